package daemon

import (
	"html/template"
	"time"

	"github.com/roster-dev/roster/reconcile/policy"
)

// The status page: plain HTML (no scripts), refreshed by a meta tag, like Pexip's LDAP sync
// status page. Count cells carry data-template and data-count attributes for tools and tests.
// It shows what Status holds, and Status never holds a PIN or password.
var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"short":          shortCommit,
	"outcomes":       policy.Outcomes,
	"or0":            func(m map[string]int, k string) int { return m[k] },
	"platformStates": func() []string { return []string{"pending", "sending", "done", "failed", "conflict"} },
	"outboxStates": func() []string {
		return []string{"pending", "sending", "sent", "failed", "dropped"}
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="10">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>roster status</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.succeeded, .idle { color: #1a7f37; } .failed { color: #b42318; font-weight: bold; } .syncing, .starting, .stopping { color: #9a6700; }
code { font-size: .95em; } .err { color: #b42318; white-space: pre-wrap; }
</style>
</head>
<body>
<h1>roster status</h1>
{{with .Daemon}}
<h2>Daemon</h2>
<table id="daemon">
<tr><th>State</th><td id="daemon-state" class="{{.State}}">{{.State}}</td></tr>
<tr><th>Last run</th><td id="daemon-last-run">{{when .LastRun}}</td></tr>
<tr><th>Last success</th><td id="daemon-last-success">{{when .LastSuccess}}</td></tr>
<tr><th>Fetched commit</th><td><code id="daemon-commit">{{.Commit}}</code></td></tr>
<tr><th>Last good commit (in force)</th><td><code id="daemon-good-commit">{{.GoodCommit}}</code></td></tr>
<tr><th>Cycles</th><td id="daemon-cycles" class="n">{{.Cycles}}</td></tr>
{{if .LastError}}<tr><th>Current error</th><td id="daemon-error" class="err">{{.LastError}}</td></tr>{{end}}
{{if .InvalidCommit}}<tr><th>Invalid commit</th><td><code id="daemon-invalid-commit">{{.InvalidCommit}}</code>
<ul id="validation-errors">{{range .ValidationErrors}}<li class="err">{{.}}</li>{{end}}</ul></td></tr>{{end}}
</table>
{{if .Reads}}<h2>Directory reads</h2>
<table id="directory-reads">
<thead><tr><th>Template</th><th>Directory</th><th>Last cycle</th><th>Changes</th><th>Last full read</th><th>Why full</th></tr></thead>
<tbody>{{range .Reads}}<tr data-template="{{.Template}}">
<td>{{.Template}}</td><td>{{.Directory}}{{if .Protocol}} ({{.Protocol}}){{end}}</td>
<td data-template="{{.Template}}" data-field="read-mode">{{.Mode}}</td>
<td class="n" data-template="{{.Template}}" data-field="read-changes">{{.Changes}}</td>
<td>{{when .FullRead}}</td><td>{{.Reason}}</td></tr>{{end}}</tbody>
</table>{{end}}
{{end}}
{{with .Policy}}
<h2>Policy endpoint</h2>
<table id="policy">
<tr><th>Listening</th><td id="policy-listen"><code>{{.Listen}}</code> ({{if .TLS}}HTTPS{{else}}plain HTTP, loopback{{end}})</td></tr>
<tr><th>Role</th><td id="policy-role">{{.Role}}</td></tr>
<tr><th>Serving</th><td id="policy-ready">{{if .Ready}}yes{{else}}no snapshot yet (nodes fall back){{end}}</td></tr>
<tr><th>Answering process</th><td id="policy-answerer">{{if .AnswererPID}}pid {{.AnswererPID}}{{else}}not running (being restarted){{end}}, {{.AnswererRestarts}} restarts</td></tr>
{{with .Snapshot}}<tr><th>Snapshot</th><td id="policy-version">{{.Version}}</td></tr>
<tr><th>Built</th><td id="policy-built">{{when .BuiltAt}} in {{.BuildDuration}}</td></tr>
<tr><th>Rooms / aliases / devices</th><td class="n" id="policy-counts">{{.Rooms}} / {{.RoomAliases}} / {{.Devices}}</td></tr>
<tr><th>Index size</th><td class="n" id="policy-bytes">{{.Bytes}} bytes</td></tr>{{end}}
<tr><th>Unknown aliases</th><td id="policy-unknown">{{.PolicyUnknown}}</td></tr>
<tr><th>Answers since start</th><td id="policy-answers">{{$answers := .Answers}}{{range $i, $o := outcomes}}{{if $i}}, {{end}}{{index $answers $o}} {{$o}}{{end}}</td></tr>
{{if .LastBuildError}}<tr><th>Last rebuild failed</th><td id="policy-error" class="err">{{.LastBuildError}}</td></tr>{{end}}
</table>
{{end}}
<p>State version <span id="state-version">{{.StateVersion}}</span>, applied commit <code id="applied-commit">{{if .AppliedCommit}}{{.AppliedCommit}}{{else}}(none){{end}}</code>.</p>

<h2>Sync templates</h2>
<table id="templates">
<thead><tr><th>Template</th><th>State</th><th>Last run</th><th>Commit</th><th>Created</th><th>Updated</th><th>Deleted</th><th>Deactivated</th><th>Unchanged</th><th>Warnings</th><th>Last error</th></tr></thead>
<tbody>
{{range .Templates}}<tr data-template="{{.Template}}">
<td>{{.Template}}</td>
<td class="{{.State}}" data-template="{{.Template}}" data-field="state">{{.State}}</td>
<td>{{when .LastRun}}</td>
<td><code>{{short .Commit}}</code></td>
<td class="n" data-template="{{.Template}}" data-count="created">{{.Created}}</td>
<td class="n" data-template="{{.Template}}" data-count="updated">{{.Updated}}</td>
<td class="n" data-template="{{.Template}}" data-count="deleted">{{.Deleted}}</td>
<td class="n" data-template="{{.Template}}" data-count="deactivated">{{.Deactivated}}</td>
<td class="n" data-template="{{.Template}}" data-count="unchanged">{{.Unchanged}}</td>
<td data-template="{{.Template}}" data-count="warnings" data-value="{{len .Warnings}}">{{if .Warnings}}<details><summary>{{len .Warnings}}</summary><ul>{{range .Warnings}}<li>{{.}}</li>{{end}}</ul></details>{{else}}0{{end}}</td>
<td class="err">{{.LastError}}</td>
</tr>
{{else}}<tr><td colspan="11">No sync has run yet.</td></tr>
{{end}}</tbody>
</table>

<h2>Objects</h2>
<table id="objects">
<tr><th>VMRs</th><td class="n" data-object="vmrs">{{or0 .Objects "vmrs"}}</td></tr>
<tr><th>VMR aliases</th><td class="n" data-object="aliases">{{or0 .Objects "aliases"}}</td></tr>
<tr><th>Devices</th><td class="n" data-object="devices">{{or0 .Objects "devices"}}</td></tr>
<tr><th>Active users</th><td class="n" data-object="users_active">{{or0 .Objects "users_active"}}</td></tr>
<tr><th>Deactivated users</th><td class="n" data-object="users_deactivated">{{or0 .Objects "users_deactivated"}}</td></tr>
<tr><th>Pending invitations</th><td class="n" data-object="invites_pending">{{or0 .Objects "invites_pending"}}</td></tr>
</table>

<h2>Outbox</h2>
<table id="outbox">
<tr>{{range $s := outboxStates}}<th>{{$s}}</th>{{end}}</tr>
<tr>{{range $s := outboxStates}}<td class="n" data-outbox="{{$s}}">{{or0 $.Outbox $s}}</td>{{end}}</tr>
</table>
{{if .FailedEmails}}
<table id="failed-emails">
<thead><tr><th>#</th><th>Kind</th><th>Object</th><th>To</th><th>Reason</th></tr></thead>
<tbody>{{range .FailedEmails}}<tr><td>{{.ID}}</td><td>{{.Kind}}</td><td>{{.Key}}</td><td>{{.To}}</td><td class="err">{{.Error}}</td></tr>
{{end}}</tbody>
</table>
{{end}}
{{range $name, $q := .Platforms}}
<h2>Platform {{$name}}</h2>
<table class="platform" data-platform="{{$name}}">
<tr><th>pending</th><th>sending</th><th>done</th><th>failed</th><th>conflict</th><th>emails waiting</th></tr>
<tr>{{range $s := platformStates}}<td class="n" data-platform="{{$name}}" data-queue="{{$s}}">{{or0 $q.Counts $s}}</td>{{end}}<td class="n" data-platform="{{$name}}" data-queue="emails_waiting">{{$q.EmailsWaiting}}</td></tr>
</table>
{{with $q.Push}}<p>Pushing: {{.Done}}/{{.Total}}, {{printf "%.1f" .RatePerS}}/s, {{.ETASecond}} s left.</p>{{end}}
{{if $q.Stuck}}<table><thead><tr><th>#</th><th>Status</th><th>Op</th><th>Resource</th><th>Key</th><th>Reason</th></tr></thead>
<tbody>{{range $q.Stuck}}<tr><td>{{.ID}}</td><td class="failed">{{.Status}}</td><td>{{.Op}}</td><td>{{.Resource}}</td><td>{{.Key}}</td><td class="err">{{.Error}}</td></tr>
{{end}}</tbody></table>{{end}}
{{end}}

<h2>Pending invitations</h2>
{{if .Invites}}<table id="invites">
<thead><tr><th>Email</th><th>Expires</th><th>Time left</th></tr></thead>
<tbody>{{range .Invites}}<tr><td>{{.Email}}</td><td>{{when .ExpiresAt}}</td><td{{if .Expired}} class="failed"{{end}}>{{.TimeLeft}}</td></tr>
{{end}}</tbody>
</table>{{else}}<p>None.</p>{{end}}

<h2>Recent changes</h2>
{{if .Recent}}<table id="audit">
<thead><tr><th>At</th><th>Commit</th><th>Actor</th><th>Kind</th><th>Action</th><th>Key</th><th>Detail</th></tr></thead>
<tbody>{{range .Recent}}<tr><td>{{.At}}</td><td><code>{{short .Commit}}</code></td><td>{{.Actor}}</td><td>{{.Kind}}</td><td>{{.Action}}</td><td>{{.Key}}</td><td>{{.Detail}}</td></tr>
{{end}}</tbody>
</table>{{else}}<p>None.</p>{{end}}
<p><a href="api/status">JSON</a> · <a href="metrics">metrics</a></p>
</body>
</html>
`))
