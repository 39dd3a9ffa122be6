package main

import (
	"fmt"
	"image/color"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot size in pixels; PNGs are drawn at 96 dpi.
const (
	plotWidth  = 900
	plotHeight = 500
	plotDPI    = 96
)

// writePlot draws received vs offered records/s, one line per collector,
// with the y = x line (no loss), as a PNG.
func writePlot(path, title string, names []string, points map[string][]seriesPoint) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "offered records/s"
	p.Y.Label.Text = "received records/s"
	p.X.Tick.Marker = rateTicks{}
	p.Y.Tick.Marker = rateTicks{}
	p.X.Min, p.Y.Min = 0, 0
	p.Legend.Top, p.Legend.Left = false, false // below the y = x line: nothing is drawn there
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(10), vg.Points(10)
	p.Add(plotter.NewGrid())

	top := 0.0
	var lines []any
	for _, n := range names {
		xys := make(plotter.XYs, len(points[n]))
		for i, pt := range points[n] {
			xys[i].X, xys[i].Y = pt.Offered, pt.Received
			top = max(top, pt.Offered, pt.Received)
		}
		lines = append(lines, n, xys)
	}
	// The y = x line first, under the others.
	ideal, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: top, Y: top}})
	if err != nil {
		return err
	}
	ideal.Color = color.Gray{Y: 140}
	ideal.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(ideal)
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	p.Legend.Add("no loss (y = x)", ideal)
	p.X.Max, p.Y.Max = top*1.05, top*1.05
	return p.Save(plotWidth*vg.Inch/plotDPI, plotHeight*vg.Inch/plotDPI, path)
}

// rateTicks labels rates as 200k, 1.2M.
type rateTicks struct{}

func (rateTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = humanRate(ticks[i].Value)
		}
	}
	return ticks
}

func humanRate(v float64) string {
	switch {
	case v >= 1e6:
		return trimZero(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case v >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	}
	return fmt.Sprintf("%.0f", v)
}

func trimZero(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	for len(s) > 1 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}
