// Command devbroker runs a single-process Kafka-protocol broker (franz-go's
// kfake) for development, the demo and end-to-end tests. With --data-dir its
// data, topic ids and group offsets survive a restart (even kill -9).
//
//	go run ./scripts/dev/devbroker --listen 127.0.0.1:9092 --data-dir scripts/.demo/kafka --topic flows --partitions 4
//
// It prints "devbroker: listening on HOST:PORT" on stdout once it accepts
// connections, and stops cleanly on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devbroker:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devbroker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9092", "address to listen on (port 0: any free port)")
	dataDir := fs.String("data-dir", "", "persist data here (empty: in memory, lost at exit)")
	topics := fs.String("topic", "flows", "comma-separated topics to create at start")
	partitions := fs.Int("partitions", 4, "partitions of each seeded topic")
	autoCreate := fs.Bool("auto-create-topics", false, "let clients create topics by producing to them")
	logLevel := fs.String("log-level", "none", "kfake's own log level: none, error, warn, info, debug")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, portText, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("--listen: bad port %q", portText)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.SeedTopics(int32(*partitions), splitList(*topics)...),
		kfake.WithLogger(kfake.BasicLogger(stderr, level(*logLevel))),
	}
	if *dataDir != "" {
		if err := os.MkdirAll(*dataDir, 0o755); err != nil {
			return err
		}
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	if err := ping(ctx, addr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "devbroker: listening on %s\n", addr)
	slog.New(slog.NewTextHandler(stderr, nil)).Info("devbroker ready",
		"addr", addr, "topics", *topics, "partitions", *partitions, "data_dir", *dataDir)
	<-ctx.Done()
	return nil
}

// ping makes sure the broker answers before its address is announced.
func ping(ctx context.Context, addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.Ping(ctx)
}

func splitList(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func level(s string) kfake.LogLevel {
	switch s {
	case "error":
		return kfake.LogLevelError
	case "warn":
		return kfake.LogLevelWarn
	case "info":
		return kfake.LogLevelInfo
	case "debug":
		return kfake.LogLevelDebug
	}
	return kfake.LogLevelNone
}
