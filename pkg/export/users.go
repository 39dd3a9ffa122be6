package export

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// userFields are the record fields the user families count by, in the
// order Record.Fields holds them (Parser.ReadFields).
var userFields = []string{"src_user", "dst_user"}

// userLabels label the user families: the subscriber's User-Name and the
// exporter, as hostname does for the AS pairs.
var userLabels = []string{"user", "hostname"}

// userKey is one user series: a user in one direction, seen by one
// exporter. Transmit counts flows whose src_user is the user, Receive
// those whose dst_user is.
type userKey struct {
	user  string
	dir   Direction
	other bool
	host  string
}

type userCounts struct {
	bytes, packets, flows uint64
	lastSeen              int64 // unix nanoseconds
}

// userTable holds the per-user counters, under the Table's lock, with
// the same cardinality rules as the pairs: at most Config.MaxUsers
// series, new users then fold into one "other" series per direction, and
// series idle for Config.PairTTL expire.
type userTable struct {
	series  map[userKey]*userCounts
	others  int // "other" series in series
	folded  uint64
	expired uint64

	descs    [2][3]*prometheus.Desc // by direction (Receive, Transmit), unit
	usersD   *prometheus.Desc
	foldedD  *prometheus.Desc
	expiredD *prometheus.Desc
}

func (u *userTable) init() {
	u.series = make(map[userKey]*userCounts)
	for d, f := range [2]struct{ name, what string }{
		Receive:  {"flowexport_user_receive", "received by the subscriber (dst_user)"},
		Transmit: {"flowexport_user_transmit", "transmitted by the subscriber (src_user)"},
	} {
		for n, unit := range []string{"bytes", "packets", "flows"} {
			help := strings.ToUpper(unit[:1]) + unit[1:] + " " + f.what + ", multiplied by the sampling rate."
			if unit == "flows" {
				help = "Flow records " + f.what + "."
			}
			u.descs[d][n] = prometheus.NewDesc(f.name+"_"+unit+"_total", help, userLabels, nil)
		}
	}
	u.usersD = prometheus.NewDesc("flowexport_users",
		"Per-user series currently exported (--group-by user), the \"other\" series included.", nil, nil)
	u.foldedD = prometheus.NewDesc("flowexport_users_folded_total",
		"Records counted in a user family's \"other\" series because it was full (--max-users).", nil, nil)
	u.expiredD = prometheus.NewDesc("flowexport_users_expired_total",
		"Per-user series dropped after --pair-ttl without traffic.", nil, nil)
}

// addUsersLocked counts r for its source and destination users, if it
// has any, and says whether it did. host is the record's hostname label
// (it may alias the record: it is copied before it is stored).
func (t *Table) addUsersLocked(r *Record, host string, b, p uint64) bool {
	if len(r.Fields) < len(userFields) {
		return false // not read: a Counter built before Users was set
	}
	src, dst := r.Fields[0].Bytes, r.Fields[1].Bytes
	if len(src) > 0 {
		t.bumpUserLocked(userKey{user: unsafeString(src), dir: Transmit, host: host}, r.Flows, b, p)
	}
	if len(dst) > 0 {
		t.bumpUserLocked(userKey{user: unsafeString(dst), dir: Receive, host: host}, r.Flows, b, p)
	}
	return len(src) > 0 || len(dst) > 0
}

func (t *Table) bumpUserLocked(key userKey, flows, b, p uint64) {
	u := &t.users
	c, ok := u.series[key]
	if !ok {
		if len(u.series)-u.others >= t.cfg.MaxUsers {
			u.folded++
			key = userKey{dir: key.dir, other: true}
			if c, ok = u.series[key]; !ok {
				u.others++
			}
		} else {
			// Labels must be valid UTF-8; User-Name is whatever the NAS sent.
			key.user = strings.ToValidUTF8(strings.Clone(key.user), "\uFFFD")
			key.host = strings.ToValidUTF8(strings.Clone(key.host), "\uFFFD")
		}
		if c == nil {
			c = &userCounts{}
			u.series[key] = c
		}
	}
	c.bytes += b
	c.packets += p
	c.flows += flows
	c.lastSeen = t.now
}

func (t *Table) expireUsersLocked(deadline int64) {
	u := &t.users
	for k, c := range u.series {
		if c.lastSeen < deadline {
			delete(u.series, k)
			u.expired++
			if k.other {
				u.others--
			}
		}
	}
}

// Users is the number of per-user series, the "other" ones included.
func (t *Table) Users() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.users.series)
}

func (u *userTable) describe(ch chan<- *prometheus.Desc) {
	for _, ds := range u.descs {
		for _, d := range ds {
			ch <- d
		}
	}
	ch <- u.usersD
	ch <- u.foldedD
	ch <- u.expiredD
}

type userSnapshot struct {
	series          []userSeries
	folded, expired uint64
}

type userSeries struct {
	key userKey
	userCounts
}

// snapshotLocked copies the series, for Collect to build metrics from
// outside the lock.
func (u *userTable) snapshotLocked() userSnapshot {
	s := userSnapshot{series: make([]userSeries, 0, len(u.series)), folded: u.folded, expired: u.expired}
	for k, c := range u.series {
		s.series = append(s.series, userSeries{k, *c})
	}
	return s
}

func (u *userTable) collect(ch chan<- prometheus.Metric, s userSnapshot) {
	ch <- prometheus.MustNewConstMetric(u.usersD, prometheus.GaugeValue, float64(len(s.series)))
	ch <- prometheus.MustNewConstMetric(u.foldedD, prometheus.CounterValue, float64(s.folded))
	ch <- prometheus.MustNewConstMetric(u.expiredD, prometheus.CounterValue, float64(s.expired))
	for _, x := range s.series {
		user, host := OtherLabel, OtherLabel
		if !x.key.other {
			user, host = x.key.user, x.key.host
		}
		for n, v := range [3]uint64{x.bytes, x.packets, x.flows} {
			ch <- prometheus.MustNewConstMetric(u.descs[x.key.dir][n], prometheus.CounterValue, float64(v), user, host)
		}
	}
}
