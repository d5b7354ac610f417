package sdk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"time"
)

// Publisher sends events to a topic of a named pub/sub component. Delivery
// is at-least-once: subscribers must tolerate duplicates.
type Publisher interface {
	Publish(ctx context.Context, m Message) error
}

// Message is what an app publishes. The backend wraps it in a CloudEvents 1.0
// envelope; the app chooses data, content type and metadata.
type Message struct {
	PubSub      string
	Topic       string
	Data        []byte
	ContentType string            // default application/json
	Type        string            // CloudEvents type; default "roam.event"
	Metadata    map[string]string // passed to the broker; not part of the event
}

// PublishJSON encodes v as JSON and publishes it to pubsub/topic.
func PublishJSON(ctx context.Context, p Publisher, pubsub, topic string, v any) error {
	b, err := marshal(v)
	if err != nil {
		return Errorf(InvalidArgument, "publish %s/%s: data does not encode: %v", pubsub, topic, err)
	}
	return p.Publish(ctx, Message{PubSub: pubsub, Topic: topic, Data: b, ContentType: "application/json"})
}

// Event is a delivered CloudEvents 1.0 event (structured mode), plus the
// pub/sub component and topic it arrived on, as Dapr adds them.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject,omitempty"`
	Time            time.Time `json:"time,omitzero"`
	DataContentType string    `json:"datacontenttype,omitempty"`
	PubSub          string    `json:"pubsubname,omitempty"`
	Topic           string    `json:"topic,omitempty"`
	TraceParent     string    `json:"traceparent,omitempty"`
	TraceState      string    `json:"tracestate,omitempty"`
	// Data is the payload as bytes. In JSON it is written as "data" when it is
	// JSON, as "data_base64" otherwise, per the CloudEvents JSON format.
	Data []byte `json:"-"`
}

// Decode unmarshals the event's JSON data into v.
func (e *Event) Decode(v any) error {
	if err := unmarshal(e.Data, v); err != nil {
		return Errorf(InvalidArgument, "event %s on %s: data does not decode: %v", e.ID, e.Topic, err)
	}
	return nil
}

type eventJSON struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time,omitzero"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	PubSub          string          `json:"pubsubname,omitempty"`
	Topic           string          `json:"topic,omitempty"`
	TraceParent     string          `json:"traceparent,omitempty"`
	TraceState      string          `json:"tracestate,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
	DataBase64      string          `json:"data_base64,omitempty"`
}

// MarshalJSON writes the CloudEvents 1.0 JSON format.
func (e Event) MarshalJSON() ([]byte, error) {
	j := eventJSON{e.SpecVersion, e.ID, e.Source, e.Type, e.Subject, e.Time, e.DataContentType, e.PubSub, e.Topic, e.TraceParent, e.TraceState, nil, ""}
	if len(e.Data) > 0 {
		if isJSONType(e.DataContentType) && json.Valid(e.Data) {
			j.Data = e.Data
		} else {
			j.DataBase64 = base64.StdEncoding.EncodeToString(e.Data)
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the CloudEvents 1.0 JSON format. A JSON string in
// "data" with a non-JSON content type is taken as the raw text, as Dapr
// delivers text payloads.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Event{SpecVersion: j.SpecVersion, ID: j.ID, Source: j.Source, Type: j.Type, Subject: j.Subject,
		Time: j.Time, DataContentType: j.DataContentType, PubSub: j.PubSub, Topic: j.Topic, TraceParent: j.TraceParent, TraceState: j.TraceState}
	switch {
	case j.DataBase64 != "":
		d, err := base64.StdEncoding.DecodeString(j.DataBase64)
		if err != nil {
			return err
		}
		e.Data = d
	case len(j.Data) > 0 && j.Data[0] == '"' && !isJSONType(j.DataContentType):
		var s string
		if err := json.Unmarshal(j.Data, &s); err != nil {
			return err
		}
		e.Data = []byte(s)
	case len(j.Data) > 0 && string(j.Data) != "null":
		e.Data = []byte(j.Data)
	}
	return nil
}

func isJSONType(ct string) bool {
	if ct == "" {
		return true
	}
	for i := 0; i < len(ct); i++ {
		if ct[i] == ';' {
			ct = ct[:i]
			break
		}
	}
	return ct == "application/json" || ct == "text/json" || (len(ct) > 5 && ct[len(ct)-5:] == "+json")
}
