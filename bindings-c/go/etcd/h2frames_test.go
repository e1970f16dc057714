package etcd

// HTTP/2 frames for the scripted servers of the gRPC tests (RFC 9113 §6).

const (
	h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8

	h2MaxFrame = 16384 // the largest frame before SETTINGS_MAX_FRAME_SIZE
)

func appendFrame(out []byte, kind, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	out = append(out, byte(n>>16), byte(n>>8), byte(n), kind, flags,
		byte(stream>>24), byte(stream>>16), byte(stream>>8), byte(stream))
	return append(out, payload...)
}
