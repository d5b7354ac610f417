package dapr

import (
	"slices"
	"testing"
)

// lenientEvent keeps what decodes of an envelope that sdk.Event refuses,
// and never loses the data.
func TestLenientEvent(t *testing.T) {
	ev, ignored, err := lenientEvent([]byte(`{"specversion":"1.0","id":7,"source":"s","type":"t","time":"2024-05-01 12:00:00","topic":"a","datacontenttype":"application/json","data":{"k":1},"x-ext":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ignored, []string{"id", "time"}) {
		t.Errorf("ignored %q, want id and time", ignored)
	}
	if ev.ID != "" || ev.Source != "s" || ev.Type != "t" || ev.Topic != "a" || !ev.Time.IsZero() || string(ev.Data) != `{"k":1}` {
		t.Errorf("event %+v (data %s)", ev, ev.Data)
	}

	body := []byte(`{"id":"b","datacontenttype":"application/pdf","data_base64":"JVBERi0"}`)
	ev, ignored, err = lenientEvent(body)
	if err != nil || !slices.Equal(ignored, []string{"data_base64"}) {
		t.Fatalf("%v, ignored %q", err, ignored)
	}
	if ev.ID != "b" || ev.DataContentType != cloudEventType || string(ev.Data) != string(body) {
		t.Errorf("event %+v (data %s), want the envelope as data", ev, ev.Data)
	}

	for _, b := range []string{`null`, `[1]`, `"x"`, `{`} {
		if _, _, err := lenientEvent([]byte(b)); err == nil {
			t.Errorf("%s: no error", b)
		}
	}
}
