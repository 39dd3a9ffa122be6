// Package grafana holds the Grafana dashboard of the flowpipe tools.
package grafana

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardQueriesKnownMetrics fails when a panel queries a metric that
// no tool defines any more (renamed or removed), which Grafana would only
// show as an empty panel.
func TestDashboardQueriesKnownMetrics(t *testing.T) {
	raw, err := os.ReadFile("flowpipe.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	source := allGoSource(t, filepath.Join("..", "..", "..", "pkg")) + allGoSource(t, filepath.Join("..", "..", "..", "cmd"))
	metric := regexp.MustCompile(`\bflow[a-z]*_[a-z_]+`)
	checked := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, name := range metric.FindAllString(target.Expr, -1) {
				base := strings.TrimSuffix(name, "_bucket")
				if !definedIn(source, base) {
					t.Errorf("panel %q queries %s, which no package defines", p.Title, name)
				}
				checked++
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d metric references found: dashboard not parsed?", checked)
	}
}

// definedIn looks for the metric's full name, or its name without the tool
// prefix (collectors built with Namespace + Name).
func definedIn(source, name string) bool {
	if strings.Contains(source, `"`+name+`"`) {
		return true
	}
	if i := strings.IndexByte(name, '_'); i > 0 && strings.HasPrefix(name, "flow") && name[:i] != "flow" {
		return strings.Contains(source, `"`+name[i+1:]+`"`)
	}
	// flow-exporter's names are built from a direction prefix.
	for _, dir := range []string{"flow_receive", "flow_transmit"} {
		if strings.HasPrefix(name, dir+"_") {
			return strings.Contains(source, `"`+dir+`"`) || strings.Contains(source, `"`+name+`"`)
		}
	}
	return false
}

func allGoSource(t *testing.T, dir string) string {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		b.Write(src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
