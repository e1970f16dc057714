package waypost

import (
	"bytes"
	"strings"
	"testing"
)

func TestGRPCCallSendsReadsAndFails(t *testing.T) {
	msg := []byte{0, 0, 0, 0, 3, 'a', 'b', 'c'}
	call, err := NewGRPCCall("http", "127.0.0.1:2379", "/etcdserverpb.KV/Range", msg, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	out := call.Output()
	if !bytes.HasPrefix(out, []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")) || !bytes.HasSuffix(out, msg) {
		t.Fatalf("the request: % x", out)
	}
	if again := call.Output(); len(again) != 0 {
		t.Fatalf("sent twice: % x", again)
	}
	settings := []byte{0, 0, 0, 4, 0, 0, 0, 0, 0}
	data := append([]byte{0, 0, 8, 0, 1, 0, 0, 0, 1}, msg...)
	if s := call.Receive(settings[:4]); s != GRPCWaiting {
		t.Fatalf("after a piece: %v", s)
	}
	if s := call.Receive(settings[4:]); s != GRPCWaiting || !bytes.Equal(call.Output(), []byte{0, 0, 0, 4, 1, 0, 0, 0, 0}) {
		t.Fatalf("no SETTINGS ack: %v", s)
	}
	if call.Answer() != nil {
		t.Fatal("an answer before the end")
	}
	if s := call.Receive(data); s != GRPCAnswered || !bytes.Equal(call.Answer(), msg) || call.Failure() != "" {
		t.Fatalf("%v %q %q", s, call.Answer(), call.Failure())
	}
	call.Close()
	call.Close()

	call, err = NewGRPCCall("https", "h:1", "/p", nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	if s := call.Receive(nil); s != GRPCFailed || !strings.Contains(call.Failure(), "closed the connection") {
		t.Fatalf("%v %q", s, call.Failure())
	}
	call.Close()

	for _, bad := range [][3]string{{"ftp", "h:1", "/p"}, {"http", "", "/p"}, {"http", "h:1", "/p\x00"}} {
		_, err := NewGRPCCall(bad[0], bad[1], bad[2], nil, 0)
		wantCode(t, err, CodeInvalidArgument)
	}
	_, err = NewGRPCCall("http", "h:1", "/p", make([]byte, 65536), 0)
	wantCode(t, err, CodeInvalidArgument)
	_, err = NewGRPCCall("http", "h:1", "/p", nil, -1)
	wantCode(t, err, CodeInvalidArgument)
}
