// Renders a Modelfile TEMPLATE the way Ollama's server does, for the template parity test.
//
// Reads {"template": "...", "request": <an /api/chat request body>} on stdin and writes the prompt Ollama
// would hand the model. It mirrors Ollama (github.com/ollama/ollama): the request is decoded into the same
// shapes as api/types.go (Message, ToolCall with insertion-ordered arguments, Tool / ToolFunction /
// ToolFunctionParameters / ToolProperty with the same field order and omitempty tags, insertion-ordered
// properties), messages are collated as template/template.go's collate does, and the template runs through
// text/template with missingkey=zero, the `json` func, and the same top-level values.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/template"
)

// orderedMap keeps a JSON object's keys in the order they came, as Ollama's orderedmap does.
type orderedMap[V any] struct {
	keys   []string
	values []V
}

func (m *orderedMap[V]) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("expected an object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		var value V
		if err := dec.Decode(&value); err != nil {
			return err
		}
		m.keys = append(m.keys, tok.(string))
		m.values = append(m.values, value)
	}
	return nil
}

func (m orderedMap[V]) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, key := range m.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		v, err := json.Marshal(m.values[i])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type ToolCallFunctionArguments struct {
	om *orderedMap[any]
}

func (t *ToolCallFunctionArguments) UnmarshalJSON(data []byte) error {
	t.om = &orderedMap[any]{}
	return json.Unmarshal(data, t.om)
}

func (t ToolCallFunctionArguments) MarshalJSON() ([]byte, error) {
	if t.om == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(t.om)
}

func (t *ToolCallFunctionArguments) String() string {
	if t == nil || t.om == nil {
		return "{}"
	}
	bts, _ := json.Marshal(t.om)
	return string(bts)
}

type ToolCallFunction struct {
	Index     int                       `json:"index"`
	Name      string                    `json:"name"`
	Arguments ToolCallFunctionArguments `json:"arguments"`
}

type ToolCall struct {
	ID       string           `json:"id,omitempty"`
	Function ToolCallFunction `json:"function"`
}

type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	Thinking   string     `json:"thinking,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolName   string     `json:"tool_name,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

type PropertyType []string

func (pt *PropertyType) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*pt = []string{s}
		return nil
	}
	var a []string
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	*pt = a
	return nil
}

func (pt PropertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}

type ToolProperty struct {
	AnyOf       []ToolProperty              `json:"anyOf,omitempty"`
	Type        PropertyType                `json:"type,omitempty"`
	Items       any                         `json:"items,omitempty"`
	Description string                      `json:"description,omitempty"`
	Enum        []any                       `json:"enum,omitempty"`
	Properties  *orderedMap[ToolProperty]   `json:"properties,omitempty"`
}

type ToolFunctionParameters struct {
	Type       string                    `json:"type"`
	Defs       any                       `json:"$defs,omitempty"`
	Items      any                       `json:"items,omitempty"`
	Required   []string                  `json:"required,omitempty"`
	Properties *orderedMap[ToolProperty] `json:"properties"`
}

type ToolFunction struct {
	Name        string                 `json:"name"`
	Description string                 `json:"description,omitempty"`
	Parameters  ToolFunctionParameters `json:"parameters"`
}

type Tool struct {
	Type     string       `json:"type"`
	Items    any          `json:"items,omitempty"`
	Function ToolFunction `json:"function"`
}

func (t Tool) String() string {
	bts, _ := json.Marshal(t)
	return string(bts)
}

type Tools []Tool

type input struct {
	Template string `json:"template"`
	Request  struct {
		Messages []Message `json:"messages"`
		Tools    Tools     `json:"tools"`
	} `json:"request"`
}

// collate is template/template.go's: system messages joined for .System (and kept in .Messages);
// consecutive messages of one role other than tool merged.
func collate(msgs []Message) (string, []*Message) {
	var system []string
	var collated []*Message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		fail(err)
	}
	funcs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
	tmpl, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(in.Template)
	if err != nil {
		fail(err)
	}
	system, messages := collate(in.Request.Messages)
	err = tmpl.Execute(os.Stdout, map[string]any{
		"System": system, "Messages": messages, "Tools": in.Request.Tools, "Response": "",
		"Think": false, "IsThinkSet": false, "Query": "", "Document": "", "Instruction": "",
	})
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
