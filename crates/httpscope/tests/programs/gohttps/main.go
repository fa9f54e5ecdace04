// An HTTPS server and client on Go's crypto/tls for httpscope's tests.
//
//	gohttps server CERT KEY            serves until killed; prints "listening on PORT" on stderr
//	gohttps client CA PORT N PREFIX h1|h2 [SECONDS]
//
// GOHTTPS_START_DELAY_MS makes the client wait that long before its first request.
// With SECONDS 0 the client runs until SIGINT. SIGINT makes the server shut down; both
// then exit 0.
//
// The server answers GET /?id=X with "hello X" and POST with "echo:" + body, echoing
// X-Request-Id. The client sends N requests one at a time on one keep-alive connection
// (or, with SECONDS, as many as it can for that long), alternating GET and POST, and
// prints {"requests","ok","mismatch"} as JSON.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gohttps server|client ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		serve(os.Args[2], os.Args[3])
	case "client":
		os.Exit(client(os.Args[2:]))
	default:
		os.Exit(2)
	}
}

func serve(cert, key string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id"))
		w.Header().Set("Content-Type", "text/plain")
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			w.Write(append([]byte("echo:"), body...))
			return
		}
		w.Write([]byte("hello " + r.URL.Query().Get("id")))
	})
	fmt.Fprintln(os.Stderr, "listening on", ln.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{Handler: handler}
	go func() {
		interrupted := make(chan os.Signal, 1)
		signal.Notify(interrupted, os.Interrupt)
		<-interrupted
		srv.Close()
	}()
	if err := srv.ServeTLS(ln, cert, key); err != http.ErrServerClosed {
		panic(err)
	}
}

func client(args []string) int {
	if delay := os.Getenv("GOHTTPS_START_DELAY_MS"); delay != "" {
		time.Sleep(time.Duration(atoi(delay)) * time.Millisecond)
	}
	caPEM, err := os.ReadFile(args[0])
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	port, n, prefix, proto := args[1], atoi(args[2]), args[3], args[4]
	var duration time.Duration
	interrupted := make(chan os.Signal, 1)
	if len(args) > 5 {
		duration = time.Duration(atoi(args[5])) * time.Second
		if duration == 0 {
			duration = 1 << 62
			signal.Notify(interrupted, os.Interrupt)
		}
	}
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: 1,
		ForceAttemptHTTP2:   proto == "h2",
	}
	if proto == "h1" {
		// A non-nil empty map turns HTTP/2 off.
		transport.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	c := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	base := "https://127.0.0.1:" + port + "/"
	requests, ok, mismatch := 0, 0, 0
	deadline := time.Now().Add(duration)
	for i := 0; (duration == 0 && i < n) || (duration > 0 && time.Now().Before(deadline) && len(interrupted) == 0); i++ {
		id := prefix + strconv.Itoa(i)
		var req *http.Request
		want := "hello " + id
		if i%2 == 0 {
			req, _ = http.NewRequest(http.MethodGet, base+"?id="+id, nil)
		} else {
			body := "body-" + id
			req, _ = http.NewRequest(http.MethodPost, base+"?id="+id, strings.NewReader(body))
			want = "echo:" + body
		}
		req.Header.Set("X-Request-Id", id)
		requests++
		resp, err := c.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "request", id, err)
			mismatch++
			continue
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == 200 && string(got) == want && resp.Header.Get("X-Request-Id") == id {
			ok++
		} else {
			mismatch++
		}
	}
	transport.CloseIdleConnections()
	out, _ := json.Marshal(map[string]int{"requests": requests, "ok": ok, "mismatch": mismatch})
	fmt.Println(string(out))
	if mismatch > 0 {
		return 1
	}
	return 0
}

func atoi(s string) int {
	v, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return v
}
