// Command tcpforward accepts TCP connections on one address and relays each to another. The
// real node uses it to let pods reach the API server, which listens on loopback only: the
// `kubernetes` Service's endpoint is the bridge address, and this relays it to loopback.
//
// Usage: tcpforward -listen 10.244.0.1:6443 -to 127.0.0.1:6443
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address to accept connections on")
	to := flag.String("to", "", "address to relay each connection to")
	flag.Parse()
	if *listen == "" || *to == "" {
		log.Fatal("usage: tcpforward -listen ADDR -to ADDR")
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("relaying %s to %s", *listen, *to)
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go relay(c, *to)
	}
}

func relay(c net.Conn, to string) {
	defer c.Close()
	u, err := net.DialTimeout("tcp", to, 5*time.Second)
	if err != nil {
		log.Printf("%s: %v", c.RemoteAddr(), err)
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so the other side sees the end of this direction.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(u, c)
	go pipe(c, u)
	<-done
	<-done
}
