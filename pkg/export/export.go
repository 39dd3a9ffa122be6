// Package export turns flow records read from Kafka into per-AS-pair
// Prometheus counters, compatible with neptune-networks/flow-exporter:
// flow_receive_bytes_total and flow_transmit_bytes_total labelled
// source_as, source_as_name, destination_as, destination_as_name and
// hostname, plus packets and flows, and flow_*_total for every pair.
//
// A Consumer reads the topic as a consumer-group member, a Counter parses
// each record (flowpipe/goflow2 protobuf, framed or bare; their JSON; or
// pmacct's JSON) and counts it into a Table, whose size is capped and whose
// idle series expire. The Table is a prometheus.Collector: the series are
// built at scrape time from the table.
//
// With Config.Users the table also counts by subscriber: the src_user and
// dst_user fields that flowenrich's RADIUS attribution sets give
// flowexport_user_transmit_bytes_total and
// flowexport_user_receive_bytes_total (and _packets_total, _flows_total),
// labelled user and hostname, capped at Config.MaxUsers series as the
// pairs are.
package export
