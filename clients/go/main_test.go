package main

import (
	"encoding/json"
	"reflect"
	"testing"
)

func event(t *testing.T, typ string, position, previous int64, data string) Event {
	t.Helper()
	return Event{ID: "e", Type: "label_decisions." + typ + ".v1", Subject: "o:bronze",
		GlobalPosition: position, PrevPosition: previous, Data: json.RawMessage(data)}
}

func TestFoldSkipsRepeatsAndReportsGaps(t *testing.T) {
	s := &State{Labels: map[string]*Label{}}
	awarded := event(t, "LabelAwarded", 3, 0, `{"org_id":"o","level":"bronze","valid_until":"2027-01-31"}`)
	corrected := event(t, "LabelRecordCorrected", 7, 5, `{"org_id":"o","level":"bronze","valid_until":"2027-02-28"}`)
	for _, e := range []Event{awarded, corrected, awarded, event(t, "Unknown", 9, 7, `{}`)} {
		if err := s.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	want := Label{OrgID: "o", Level: "bronze", Status: "awarded", ValidUntil: "2027-02-28", Position: 7, Events: 2}
	if got := *s.Labels["o:bronze"]; got != want {
		t.Fatalf("label %+v, want %+v", got, want)
	}
	if s.Skipped != 1 {
		t.Fatalf("skipped %d, want 1", s.Skipped)
	}
	if got := s.Missing(); !reflect.DeepEqual(got, []int64{5}) {
		t.Fatalf("missing %v, want [5]", got)
	}
}
