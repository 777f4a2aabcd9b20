// Package pattern is roster's template language, used for sync-template
// patterns and for email subjects and bodies. It runs on pongo2/v6 and
// accepts both pongo2's own syntax ({{ x|truncatechars:5 }}) and the Jinja2
// style that Pexip Infinity documents, so patterns and email templates can be
// pasted from Pexip unchanged:
//
//	{{sn|truncate(5)|upper}}   {{ mail|pex_regex_replace('@.*$', '') }}
//	{{ '%s.%s'|format(givenName, sn) }}   {% for a in mail_list %}{{ a }}{% if not loop.last %}, {% endif %}{% endfor %}
//
// # Translation
//
// A template is first rewritten into pongo2 syntax by a lexer of its own:
// a filter call with parentheses x|f(a, b=c) becomes x|f:__pexargs(a,
// __pexkw("b", c)), which packs several and keyword arguments into pongo2's
// single filter parameter; Jinja filters are renamed to their pexj_
// implementations; string literals are decoded with Python's rules ('\\1'
// is a backslash and 1, '\1' is the character U+0001, as in Jinja) and
// re-spelled for pongo2; for and set become roster's own pex_for and pex_set
// tags. pex_for provides Jinja's loop (index, index0, revindex, revindex0,
// first, last, length, depth, depth0, cycle) and pongo2's forloop (Counter,
// Counter0, Revcounter, Revcounter0, First, Last, Parentloop), and accepts
// {% else %} or {% empty %}. Anything the translator cannot express exactly
// is a compile error rather than a different rendering: tests ("is
// defined"), the ~ ** // operators, dict literals, block set, loop filters
// ("for x in y if c"), recursive loops, comment whitespace control.
//
// As in Jinja's default environment, line ends are normalised to \n, one
// trailing newline of the source is dropped, and nothing is HTML-escaped.
//
// # Values
//
// Directory entries are passed with FromAttrs (or rendered with
// Template.RenderAttrs): {{ mail }} is the first value
// of the attribute and {{ mail_list }} all of its values. A missing attribute
// renders as the empty string, like Jinja's Undefined. Values print as Python
// would print them: booleans as True and False ({{ allow_guests }} prints
// True), floats as 4.0, lists as ['a', 'b']; nil is treated as missing.
// default(x) applies when the value is missing or the empty string (and, with
// default(x, true), whenever the value is false).
//
// # Filters
//
// Jinja: abs capitalize default (d) first float format int join last length
// (count) lower replace round striptags string trim truncate upper, with
// Jinja's semantics (truncate: killwords=False, end='...', leeway=5;
// capitalize lowercases the rest; round: ties to even, as Python). range(n)
// is available as a function. Pexip: pex_clean_phone_number (keeps + and
// digits) pex_head(n) pex_tail(n) pex_hash (hex SHA-256: Pexip does not
// document its hash) pex_md5 pex_base64 pex_reverse pex_strlen
// pex_regex_replace(find, repl) (Python backreferences \1 and \g<name>)
// pex_regex_search(pattern) (first group, else the match, else "")
// pex_to_uuid (16 raw bytes or their base64, Microsoft byte order)
// pex_random_pin(n) pex_uuid4 pex_url_encode pex_url_decode. Regular
// expressions use Go's RE2 syntax, which covers Python's except
// backreferences and lookaround. pongo2's other built-in filters stay
// available except random, ljust, rjust, center, stringformat and
// floatformat.
//
// pex_random_pin and pex_uuid4 are stable, not random: each value is derived
// with HMAC-SHA256 from Options.SecretKey and the Seed (template, entry key,
// field) plus a per-render call counter, so re-rendering never rotates a PIN
// and two calls in one pattern differ. StableSecret exposes the same
// derivation for generated device passwords.
//
// pongo2 keeps filters and tags in process-wide registries. This package only
// adds new names there (pex_*, pexj_*, the pex_for and pex_set tags) and
// replaces nothing, so other pongo2 users in the process are unaffected.
//
// # Fast path
//
// Most patterns are literal text and {{ value|filter(…)… }} where value is
// a variable or a string literal and the filters take constant arguments
// (format and default may take variables):
//
//	{{cn}} VMR   {{telephoneNumber|pex_clean_phone_number|pex_tail(7)}}   {{ ''|pex_random_pin(6) }}
//	{{ "%s.%s"|format(givenName, sn)|lower }}   {{ mail|default(uid)|pex_regex_replace('@.*$', '') }}
//
// Compile also turns these into a small program that renders without
// pongo2 (Template.IsFast), calling the same filter implementations:
// capitalize default (d) format lower replace trim truncate upper, and every
// pex_ filter. Arguments are read and checked once at compile time by the
// filters' own code (regular expressions are compiled then); variables may
// be arguments of format and the default value of default, and are read at
// render time. A constant format string of only %s and %% is split at
// compile time. Everything else (tags, comments, whitespace control,
// operators, attribute access, variables as arguments of other filters,
// other filters) renders with pongo2, and so does, at render time, a
// template whose variable holds a value that is not a string (x_list,
// booleans, numbers) or whose fast rendering fails: pongo2 then renders it
// again and reports the error, so outputs and errors are the same on both
// paths (TestFastPathMatchesPongo, FuzzFastPath). Template.RenderAttrs renders straight from directory
// attributes, with the values FromAttrs would give, and builds Vars only for
// templates that need pongo2.
//
// # Sandbox
//
// Templates are compiled in a private pongo2.TemplateSet whose only loader
// refuses everything. include, ssi, import, from, extends, block, macro,
// call, now, lorem, with, filter and autoescape are refused at compile time
// with their line and column. Rendering is bounded: output by
// Options.MaxOutput, every intermediate string by 1 MiB, loop iterations by
// 100000 per render, range() by 10000 elements, and loops check a 2 s
// deadline; template source is limited to 1 MiB and nesting to 64 levels.
// pongo2 has no cancellation, so a single filter call is not interruptible,
// but no filter does more than linear work in its bounded input.
package pattern
