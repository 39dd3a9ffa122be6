package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/flowgen"
)

// TestSystemdWrapper runs scripts/deploy/systemd/flowpipe-pipeline (what
// flowpipe.service starts) with the built binaries, sends it flowgen's
// IPFIX traffic while SIGHUPs come as `systemctl reload` sends them, stops
// it with SIGTERM as systemd does, and checks that it exits 0 with every
// generated record in the broker.
func TestSystemdWrapper(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline wrapper")
	}
	const (
		topic   = "flows"
		packets = 300 // templates included
		seed    = 7
	)
	broker := startBroker(t, topic, 4)
	port := freeUDP(t)
	metrics := freeTCP(t)
	nets := filepath.Join(t.TempDir(), "networks.yaml")
	if err := os.WriteFile(nets, []byte(networksYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(moduleRoot, "scripts", "deploy", "systemd", "flowpipe-pipeline"))
	cmd.Env = append(os.Environ(),
		"FLOWPIPE_BIN="+binDir,
		fmt.Sprintf("FLOWCOLLECT_ARGS=--listen netflow://127.0.0.1:%d --metrics-listen %s", port, metrics),
		"FLOWENRICH_ARGS=--networks "+nets,
		"FLOWPUBLISH_ARGS=--brokers "+broker+" --topic "+topic+" --key sampler_address",
	)
	wrapper := start(t, "flowpipe-pipeline", cmd)
	if !waitFor(20*time.Second, func() bool { return strings.Contains(wrapper.log.String(), "msg=listening") }) {
		t.Fatalf("flowcollect is not listening")
	}

	gen := exec.Command(bin("flowgen"), "--protocol", "ipfix", "--seed", strconv.Itoa(seed), "--ipv6-ratio", "0.3",
		"--send", fmt.Sprintf("127.0.0.1:%d", port), "--count", strconv.Itoa(packets), "--rate", "20000")
	var genOut bytes.Buffer
	gen.Stdout, gen.Stderr = &genOut, &genOut
	if err := gen.Start(); err != nil {
		t.Fatal(err)
	}
	genDone := make(chan error, 1)
	go func() { genDone <- gen.Wait() }()
	// `systemctl reload flowpipe` (ExecReload: kill -HUP $MAINPID) while
	// the traffic flows: the wrapper passes it to every stage, which must
	// live through it and lose nothing.
	hups := 0
	for done := false; !done; {
		select {
		case err := <-genDone:
			if err != nil {
				t.Fatalf("flowgen: %v\n%s", err, genOut.String())
			}
			done = true
		case <-time.After(20 * time.Millisecond):
			wrapper.signal(syscall.SIGHUP)
			hups++
		}
	}
	// bash may fold signals that arrive together: at least one must have
	// reached flowcollect.
	if !waitFor(10*time.Second, func() bool { return strings.Contains(wrapper.log.String(), "SIGHUP: reloading") }) {
		t.Errorf("%d SIGHUPs sent to the wrapper, none reached flowcollect", hups)
	}
	// flowenrich reloads its networks file on SIGHUP, flowpublish logs it.
	for _, want := range []string{"msg=reloaded", "SIGHUP: nothing to reload"} {
		if !waitFor(10*time.Second, func() bool { return strings.Contains(wrapper.log.String(), want) }) {
			t.Errorf("%d SIGHUPs sent to the wrapper, no %q in the stages' logs:\n%s", hups, want, wrapper.log.String())
		}
	}
	// The same generator in-process gives the ground truth.
	g, err := flowgen.New(flowgen.Config{Seed: seed, Protocol: flowgen.IPFIX, IPv6Ratio: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	var wantRecords, wantBytes, wantPackets uint64
	for range packets {
		_, flows := g.Next()
		for _, f := range flows {
			wantRecords++
			wantBytes += f.Bytes
			wantPackets += f.Packets
		}
	}

	wrapper.signal(syscall.SIGTERM)
	if code := wrapper.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("flowpipe-pipeline exited %d", code)
	}
	msgs := kcatRecords(t, broker, topic)
	var gotBytes, gotPackets uint64
	for _, m := range msgs {
		gotBytes += m.Bytes
		gotPackets += m.Packets
	}
	if uint64(len(msgs)) != wantRecords || gotBytes != wantBytes || gotPackets != wantPackets {
		t.Errorf("broker holds %d records (%d bytes, %d packets), flowgen sent %d (%d, %d)",
			len(msgs), gotBytes, gotPackets, wantRecords, wantBytes, wantPackets)
	}
	t.Logf("%d records through the wrapper; %d SIGHUPs sent, %d reloads by flowcollect and flowenrich, %d logged by flowpublish",
		len(msgs), hups, strings.Count(wrapper.log.String(), "SIGHUP: reloading"), strings.Count(wrapper.log.String(), "SIGHUP: nothing to reload"))
}
