package notify

import (
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// HTMLToText derives the text/plain alternative of an HTML body: tags stripped, entities
// decoded, whitespace collapsed as a browser would, line breaks kept for <br>, paragraphs,
// headings, list items, table rows and block elements, links followed by their address,
// and the contents of <head>, <script> and <style> dropped.
func HTMLToText(src string) string {
	var b strings.Builder
	z := html.NewTokenizer(strings.NewReader(src))
	skip := 0     // depth inside head/script/style/title
	pre := 0      // depth inside pre
	space := true // the output ends in whitespace (so a space need not be added)
	var hrefs []string
	var linkStart []int
	newline := func(n int) {
		s := b.String()
		have := len(s) - len(strings.TrimRight(s, "\n"))
		if len(s) == 0 {
			return
		}
		for ; have < n; have++ {
			b.WriteByte('\n')
		}
		space = true
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return tidyText(b.String())
		case html.TextToken:
			if skip > 0 {
				continue
			}
			text := string(z.Text())
			if pre > 0 {
				b.WriteString(text)
				space = strings.HasSuffix(text, "\n") || strings.HasSuffix(text, " ")
				continue
			}
			if len(text) > 0 && isHTMLSpace(rune(text[0])) && !space {
				b.WriteByte(' ')
				space = true
			}
			for i, f := range strings.FieldsFunc(text, isHTMLSpace) {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(f)
				space = false
			}
			if len(text) > 0 && isHTMLSpace(rune(text[len(text)-1])) && !space {
				b.WriteByte(' ')
				space = true
			}
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			start := tt != html.EndTagToken
			switch a {
			case atom.Head, atom.Script, atom.Style, atom.Title, atom.Template:
				if tt == html.StartTagToken {
					skip++
				} else if tt == html.EndTagToken && skip > 0 {
					skip--
				}
			case atom.Br:
				b.WriteByte('\n')
				space = true
			case atom.P, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Blockquote, atom.Table, atom.Ul, atom.Ol, atom.Hr:
				newline(2)
			case atom.Div, atom.Tr, atom.Section, atom.Article, atom.Header, atom.Footer, atom.Dt, atom.Dd:
				newline(1)
			case atom.Pre:
				newline(2)
				if tt == html.StartTagToken {
					pre++
				} else if tt == html.EndTagToken && pre > 0 {
					pre--
				}
			case atom.Li:
				if start {
					newline(1)
					b.WriteString("- ")
					space = true
				}
			case atom.Td, atom.Th:
				if start && !space {
					b.WriteByte('\t')
					space = true
				}
			case atom.A:
				if tt == html.StartTagToken {
					href := ""
					for hasAttr {
						var k, v []byte
						k, v, hasAttr = z.TagAttr()
						if string(k) == "href" {
							href = string(v)
						}
					}
					hrefs = append(hrefs, href)
					linkStart = append(linkStart, b.Len())
				} else if tt == html.EndTagToken && len(hrefs) > 0 {
					href, at := hrefs[len(hrefs)-1], linkStart[len(linkStart)-1]
					hrefs, linkStart = hrefs[:len(hrefs)-1], linkStart[:len(linkStart)-1]
					text := strings.TrimSpace(b.String()[at:])
					href = strings.TrimPrefix(href, "mailto:")
					if href != "" && !strings.HasPrefix(href, "#") && href != text && !strings.HasPrefix(strings.ToLower(href), "javascript:") {
						if !space {
							b.WriteByte(' ')
						}
						b.WriteString("<" + href + ">")
						space = false
					}
				}
			case atom.Img:
				for hasAttr {
					var k, v []byte
					k, v, hasAttr = z.TagAttr()
					if string(k) == "alt" && len(v) > 0 {
						if !space {
							b.WriteByte(' ')
						}
						b.Write(v)
						space = false
					}
				}
			}
		}
	}
}

func isHTMLSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f'
}

// tidyText trims trailing spaces of each line, keeps at most one blank line in a row,
// trims the ends and ends the text with one newline.
func tidyText(s string) string {
	s = strings.ReplaceAll(s, "\u00a0", " ")
	var b strings.Builder
	b.Grow(len(s))
	blanks := 0
	for len(s) > 0 {
		line, rest, _ := strings.Cut(s, "\n")
		s = rest
		line = strings.TrimRight(line, " \t")
		if line == "" {
			blanks++
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n")
			if blanks > 0 {
				b.WriteString("\n")
			}
		}
		blanks = 0
		b.WriteString(line)
	}
	if b.Len() == 0 {
		return ""
	}
	b.WriteString("\n")
	return b.String()
}
