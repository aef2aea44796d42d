// Command labelfeed follows the public label events over the HTTP pull feed
// (GET /api/feed?after=N&limit=L), as the subscriber guide (schemas/README.md) says,
// and folds them into the state of each label record (clients/README.md).
//
// The cursor (the last globalposition applied) is kept in the state file with the fold,
// so a second run resumes where the first stopped. Only the Go standard library is used.
//
//	labelfeed -url http://127.0.0.1:8100 -state state.json [-limit 100] [-max-pages N]
//
// It pages until it reaches the feed's head (or N pages), saves, and prints a summary.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Event is a structured-mode CloudEvent of the feed; numbers are JSON integers here
// (strings in Kafka headers).
type Event struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Subject        string          `json:"subject"`
	GlobalPosition int64           `json:"globalposition"`
	PrevPosition   int64           `json:"prevposition"`
	Data           json.RawMessage `json:"data"`
}

// Page is one answer of /api/feed.
type Page struct {
	Head   int64   `json:"head"`
	After  int64   `json:"after"`
	Next   int64   `json:"next"`
	Events []Event `json:"events"`
}

// Label is one label record as the fold leaves it.
type Label struct {
	OrgID      string `json:"org_id"`
	Level      string `json:"level"`
	Status     string `json:"status,omitempty"`
	ValidUntil string `json:"valid_until,omitempty"`
	Position   int64  `json:"position"`
	Events     int64  `json:"events"`
}

// State is the fold, the cursor, and the positions applied (with their prevposition).
type State struct {
	After   int64             `json:"after"`
	Labels  map[string]*Label `json:"labels"`
	Applied [][2]int64        `json:"applied"`
	Skipped int64             `json:"skipped"`
}

var statuses = map[string]string{
	"LabelAwarded":   "awarded",
	"LabelRenewed":   "renewed",
	"LabelExpired":   "expired",
	"LabelWithdrawn": "withdrawn",
}

// Apply folds one event, skipping one at or below its subject's position (a repeat).
func (s *State) Apply(e Event) error {
	if known, ok := s.Labels[e.Subject]; ok && known.Position >= e.GlobalPosition {
		s.Skipped++
		return nil
	}
	s.Applied = append(s.Applied, [2]int64{e.GlobalPosition, e.PrevPosition})
	parts := strings.Split(e.Type, ".")
	if len(parts) < 2 {
		return fmt.Errorf("event %s: type %q", e.ID, e.Type)
	}
	status, known := statuses[parts[1]]
	if !known && parts[1] != "LabelRecordCorrected" {
		return nil // a type this client does not know: ignored, as the guide says
	}
	var data struct {
		OrgID      string  `json:"org_id"`
		Level      string  `json:"level"`
		ValidUntil *string `json:"valid_until"`
	}
	if err := json.Unmarshal(e.Data, &data); err != nil {
		return fmt.Errorf("event %s: %w", e.ID, err)
	}
	label, ok := s.Labels[e.Subject]
	if !ok {
		label = &Label{}
		s.Labels[e.Subject] = label
	}
	label.OrgID, label.Level = data.OrgID, data.Level
	if known {
		label.Status = status // a correction changes the dates only
	}
	if data.ValidUntil != nil {
		label.ValidUntil = *data.ValidUntil
	}
	label.Position = e.GlobalPosition
	label.Events++
	return nil
}

// Missing lists the prevpositions applied events name that were never applied.
func (s *State) Missing() []int64 {
	seen := map[int64]bool{}
	for _, pair := range s.Applied {
		seen[pair[0]] = true
	}
	missing := []int64{}
	for _, pair := range s.Applied {
		if pair[1] != 0 && !seen[pair[1]] {
			missing = append(missing, pair[1])
		}
	}
	return missing
}

func load(path string) (*State, error) {
	s := &State{Labels: map[string]*Label{}, Applied: [][2]int64{}}
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	return s, json.Unmarshal(raw, s)
}

func save(path string, s *State) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func fetch(client *http.Client, base string, after int64, limit int) (*Page, error) {
	query := url.Values{"after": {fmt.Sprint(after)}, "limit": {fmt.Sprint(limit)}}
	response, err := client.Get(base + "/api/feed?" + query.Encode())
	if err != nil {
		return nil, err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	if err != nil {
		return nil, err
	}
	if response.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/feed?after=%d: %s: %s", after, response.Status, body)
	}
	page := &Page{}
	return page, json.Unmarshal(body, page)
}

func run() error {
	base := flag.String("url", "http://127.0.0.1:8100", "the projections service")
	statePath := flag.String("state", "labelfeed-state.json", "the fold and cursor")
	limit := flag.Int("limit", 100, "events per page")
	maxPages := flag.Int("max-pages", -1, "stop after this many pages (-1: at the head)")
	flag.Parse()

	state, err := load(*statePath)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	pages := 0
	for pages != *maxPages {
		page, err := fetch(client, *base, state.After, *limit)
		if err != nil {
			return err
		}
		pages++
		for _, event := range page.Events {
			if err := state.Apply(event); err != nil {
				return err
			}
		}
		state.After = page.Next // the last position in the page: the next cursor
		if err := save(*statePath, state); err != nil {
			return err
		}
		if len(page.Events) == 0 || page.Next >= page.Head {
			break
		}
	}
	summary := map[string]any{
		"after": state.After, "labels": state.Labels, "applied": state.Applied,
		"skipped": state.Skipped, "missing": state.Missing(), "pages": pages,
	}
	return json.NewEncoder(os.Stdout).Encode(summary)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "labelfeed:", err)
		os.Exit(1)
	}
}
