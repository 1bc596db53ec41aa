"""tlsproxy: a man in the middle of the agent's TLS connection to the
replicator, for tests that change what one side says (t_repl_hashresp.py).

The agent dials the proxy, which presents a server certificate of the
test CA for 127.0.0.1 (the name the agent checks) and asks for the
agent's client certificate; the proxy dials the real replicator as the
agent, with the source server's client certificate (the replicator keys
the staging volumes by it).  Between the two it forwards whole frames
(docs/protocol.md section 2: a 16-byte header -- u32 length, u8 type,
u8 flags, u16 reserved, u64 seq, big-endian -- then the payload), each
through a hook that may pass it on, change it, hold it or drop it.

One thread per connection, both TLS sockets non-blocking in one select
loop (an SSL object is not for two threads at once).  Standard library
only; loopback only, on a port the kernel picks.
"""
import collections
import os
import select
import socket
import ssl
import struct
import threading

HDR = struct.Struct('>IBBHQ')
MAX_PAYLOAD = (1 << 20) + 8192      # FERRY_WIRE_MAX_PAYLOAD

NAMES = {1: 'HELLO', 2: 'WELCOME', 3: 'DATA', 4: 'ZERO', 5: 'HASH_REQ',
         6: 'HASH_RESP', 7: 'SYNC_MARK', 8: 'CP', 9: 'ACK', 10: 'PING',
         11: 'PONG', 12: 'ERROR', 13: 'BYE'}


class Frame:
    """One frame: header fields and payload.  encode() gives its bytes,
    with the length field taken from the payload."""

    def __init__(self, ftype, seq, payload=b'', flags=0, reserved=0):
        self.type = ftype
        self.seq = seq
        self.payload = bytes(payload)
        self.flags = flags
        self.reserved = reserved

    @property
    def name(self):
        return NAMES.get(self.type, 'type %d' % self.type)

    def encode(self):
        return HDR.pack(len(self.payload), self.type, self.flags,
                        self.reserved, self.seq) + self.payload


class Pass:
    """The hook that changes nothing.  A hook's from_agent() and
    from_replicator() get every whole frame of CONN (a Conn) from that
    side and send what they want with conn.to_replicator() and
    conn.to_agent(); tick() is called at least every 0.1 s, for hooks
    that hold frames for a while."""

    def from_agent(self, conn, f):
        conn.to_replicator(f)

    def from_replicator(self, conn, f):
        conn.to_agent(f)

    def tick(self, conn):
        pass


class _Side:
    """One TLS socket of a connection: frames in, bytes out."""

    def __init__(self, sock, name):
        self.sock = sock
        self.name = name
        self.inbuf = bytearray()
        self.out = bytearray()
        self.inflight = 0       # length of an SSL write to retry as is
        self.eof = False

    def read(self):
        """Take what the socket has; False at its end."""
        while True:
            try:
                d = self.sock.recv(262144)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return True
            except (OSError, ssl.SSLError):
                return False
            if not d:
                return False
            self.inbuf += d

    def frames(self):
        """The whole frames received so far (None: a bad header)."""
        got = []
        while len(self.inbuf) >= HDR.size:
            n, ftype, flags, res, seq = HDR.unpack_from(self.inbuf)
            if n > MAX_PAYLOAD:
                return None
            if len(self.inbuf) < HDR.size + n:
                break
            got.append(Frame(ftype, seq, self.inbuf[HDR.size:HDR.size + n],
                             flags, res))
            del self.inbuf[:HDR.size + n]
        return got

    def write(self):
        """Send what is queued, as far as the socket takes it.  An SSL
        write that could not finish is retried with the same length
        (Python's SSL sockets do not write partially)."""
        while self.out:
            n = self.inflight or min(len(self.out), 262144)
            try:
                sent = self.sock.send(self.out[:n])
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                self.inflight = n
                return True
            except (OSError, ssl.SSLError):
                return False
            self.inflight = 0
            del self.out[:sent]
        return True


class Conn:
    """One connection through the proxy: N (1, 2, ... in accept order)
    and, per side, how many frames of each type it sent."""

    def __init__(self, proxy, n, sock):
        self.proxy = proxy
        self.n = n
        self.raw = sock
        self.seen = {'agent': collections.Counter(),
                     'replicator': collections.Counter()}
        self.a = self.u = None
        self.error = None

    def to_agent(self, f):
        self.a.out += f.encode() if isinstance(f, Frame) else f

    def to_replicator(self, f):
        self.u.out += f.encode() if isinstance(f, Frame) else f

    def _open(self):
        p = self.proxy
        self.raw.settimeout(10)
        a = p.server_ctx.wrap_socket(self.raw, server_side=True)
        self.a = _Side(a, 'agent')
        u = socket.create_connection(('127.0.0.1', p.target), timeout=10)
        u = p.client_ctx.wrap_socket(u, server_hostname='127.0.0.1')
        self.u = _Side(u, 'replicator')
        for s in (a, u):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)

    def run(self):
        try:
            self._open()
        except (OSError, ssl.SSLError) as e:
            self.error = 'opening: %s' % e
            self.close()
            return
        try:
            self._forward()
        except Exception as e:      # a hook's bug: say so, do not hang
            self.error = 'forwarding: %r' % e
        self.close()

    def _forward(self):
        hook = self.proxy.hook
        sides = ((self.a, hook.from_agent), (self.u, hook.from_replicator))
        while not self.proxy.closed:
            hook.tick(self)
            for side, _ in sides:
                if not side.write():
                    side.eof = True
            r, w, _ = select.select(
                [s.sock for s, _ in sides if not s.eof],
                [s.sock for s, _ in sides if s.out and not s.eof],
                [], 0.1)
            for side, fn in sides:
                if side.sock not in r:
                    continue
                alive = side.read()
                got = side.frames()
                if got is None:
                    self.error = 'bad frame header from the %s' % side.name
                    alive = False
                for f in got or ():
                    self.seen[side.name][f.name] += 1
                    fn(self, f)
                if not alive:
                    side.eof = True
            if self.a.eof or self.u.eof:
                break
        # One side is gone: what the other is owed goes out, then both
        # close (like a TCP forwarder would).
        for side in (self.a, self.u):
            if not side.eof and side.out:
                side.sock.setblocking(True)
                side.sock.settimeout(5)
                try:
                    side.sock.sendall(side.out)
                except (OSError, ssl.SSLError):
                    pass

    def close(self):
        for s in (self.a and self.a.sock, self.u and self.u.sock, self.raw):
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class FrameProxy:
    """127.0.0.1:port -> the replicator on TARGET_PORT, as the source
    server with CLIENT (certificate, key) of PKI (tests/replicator/
    repltest.py), every frame through HOOK (default Pass())."""

    def __init__(self, pki, target_port, client, hook=None, ident='mitm'):
        self.target = target_port
        self.hook = hook or Pass()
        cert = os.path.join(pki.out, ident + '.pem')
        key = os.path.join(pki.out, ident + '-key.pem')
        if not os.path.exists(cert):
            pki.issue('replicator', ident, ['127.0.0.1'])
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.server_ctx.load_cert_chain(cert, key)
        self.server_ctx.verify_mode = ssl.CERT_REQUIRED
        self.server_ctx.load_verify_locations(pki.ca)
        self.client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        # The replicator's certificate has ferry's key purpose, not
        # serverAuth (lib/peer_id.h), which Python's client would refuse:
        # the proxy takes the test's own replicator on loopback unchecked
        # (the agent's side of it is what is tested).
        self.client_ctx.check_hostname = False
        self.client_ctx.verify_mode = ssl.CERT_NONE
        self.client_ctx.load_cert_chain(*client)
        self.ls = socket.socket()
        self.ls.bind(('127.0.0.1', 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        self.closed = False
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def accepted(self):
        return len(self.conns)

    def _serve(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                conn = Conn(self, len(self.conns) + 1, c)
                self.conns.append(conn)
            threading.Thread(target=conn.run, daemon=True).start()

    def close(self):
        self.closed = True
        self.ls.close()
