package command

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// signals turns the process's signals into a stage's events: the first
// SIGINT/SIGTERM cancels the context, a second one exits at once, SIGHUP
// runs the reload hooks, SIGPIPE is caught so that a write to a closed pipe
// returns EPIPE instead of killing the process.
type signals struct {
	stderr io.Writer
	name   string

	mu    sync.Mutex
	log   *slog.Logger
	hooks []func()

	stop     chan os.Signal // SIGINT, SIGTERM
	hup      chan os.Signal
	pipe     chan os.Signal
	done     chan struct{}
	finished sync.WaitGroup
}

func newSignals(stderr io.Writer, name string) *signals {
	return &signals{
		stderr: stderr,
		name:   name,
		log:    slog.New(slog.NewTextHandler(stderr, nil)),
		stop:   make(chan os.Signal, 2),
		hup:    make(chan os.Signal, 1),
		pipe:   make(chan os.Signal, 1),
		done:   make(chan struct{}),
	}
}

func (s *signals) setLog(log *slog.Logger) {
	s.mu.Lock()
	s.log = log
	s.mu.Unlock()
}

func (s *signals) onReload(fn func()) {
	s.mu.Lock()
	s.hooks = append(s.hooks, fn)
	s.mu.Unlock()
}

// start installs the handlers and returns the context that the first
// SIGINT/SIGTERM cancels, and the function that uninstalls them.
func (s *signals) start(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	signal.Notify(s.stop, os.Interrupt, syscall.SIGTERM)
	signal.Notify(s.hup, syscall.SIGHUP)
	signal.Notify(s.pipe, syscall.SIGPIPE)
	s.finished.Add(2)
	go s.drainOrExit(cancel)
	go s.reloads()
	return ctx, func() {
		close(s.done)
		s.finished.Wait()
		signal.Stop(s.stop)
		signal.Stop(s.pipe)
		// Not Stop: a SIGHUP while the process exits would then kill it
		// with the default action. Ignored, it does nothing.
		signal.Ignore(syscall.SIGHUP)
		cancel()
	}
}

func (s *signals) drainOrExit(cancel context.CancelFunc) {
	defer s.finished.Done()
	select {
	case sig := <-s.stop:
		s.logger().Info("draining; a second signal exits at once", "signal", sig.String())
		cancel()
	case <-s.done:
		return
	}
	select {
	case <-s.stop:
		fmt.Fprintf(s.stderr, "%s: second signal, exiting without draining\n", s.name)
		os.Exit(ExitRuntime)
	case <-s.done:
	}
}

func (s *signals) reloads() {
	defer s.finished.Done()
	for {
		select {
		case <-s.hup:
		case <-s.done:
			return
		}
		s.mu.Lock()
		hooks, log := s.hooks, s.log
		s.mu.Unlock()
		if len(hooks) == 0 {
			log.Info("SIGHUP: nothing to reload; going on")
			continue
		}
		log.Info("SIGHUP: reloading")
		for _, h := range hooks {
			h()
		}
	}
}

func (s *signals) logger() *slog.Logger {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log
}
