"""nginx terminating TLS in front of a plain ws:// upstream (build/testd), and
the test certificates: shared by tests/tls/transports.py, tools/conformance.py
--tls, tools/soak.py --tls and the benchmark's wss:// row.

    import tlsnginx                       # with tests/tls on sys.path
    certs = tlsnginx.make_certs(dir)      # tests/tls/make_certs.sh into dir
    ng = tlsnginx.Nginx("name", upstream_port,
                        [tlsnginx.tls_server(certs + "/server.pem", certs + "/server.key")],
                        logdir)           # ng.port: wss://localhost:PORT
    ...
    ng.stop()

Needs nginx (NGINX, default /usr/sbin/nginx) and the openssl CLI; a missing
nginx raises harness.Skip. Standard library only."""
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from harness import SLOW, Skip, free_port, read_text  # noqa: E402

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")


def have_nginx():
    return os.access(NGINX, os.X_OK)


def need_nginx():
    if not have_nginx():
        raise Skip("nginx not found at %s (apt-get install nginx)" % NGINX)


def _die_with_parent():
    """In the nginx child before exec (Linux): SIGTERM when its parent dies."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)       # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def make_certs(out_dir, timeout=60):
    """tests/tls/make_certs.sh OUT_DIR (idempotent); returns out_dir, or raises
    RuntimeError with openssl's output."""
    r = subprocess.run(["bash", os.path.join(HERE, "make_certs.sh"), out_dir], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("tests/tls/make_certs.sh %s: %s" % (out_dir, (r.stdout + r.stderr).strip()[-600:]))
    return out_dir


def tls_server(cert_file, key_file, server_name="localhost", default=True, client_ca=None):
    """One nginx server block: the certificate it presents, and for mTLS the CA
    that client certificates must come from (ssl_verify_client on)."""
    return {"cert": cert_file, "key": key_file, "name": server_name, "default": default, "client_ca": client_ca}


class Nginx:
    """nginx as a child process (daemon off), everything inside one directory,
    terminating TLS on one port and proxying every path to a plain ws://
    upstream (testd) as a WebSocket reverse proxy. Several server blocks on
    the one port are told apart by SNI (server_name)."""

    def __init__(self, name, upstream_port, servers, logdir, track=None, worker_processes=1, plain=False,
                 die_with_parent=False):
        """plain=True adds a plain ws:// listener on self.plain_port with the
        same proxying, for measuring what TLS adds on the same path;
        die_with_parent: nginx gets SIGTERM when this process dies, even by
        SIGKILL (Linux)."""
        need_nginx()
        self.dir = os.path.abspath(os.path.join(logdir, "nginx-" + name))
        self.worker_processes = worker_processes
        self.port = free_port()
        self.plain_port = free_port() if plain else None
        self.die_with_parent = die_with_parent
        self.upstream_port = upstream_port
        self.servers = servers
        self.proc = None
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir)
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.access_log = os.path.join(self.dir, "access.log")
        self.write_conf()
        if track:
            track(self)              # before it starts: a watchdog can stop it
        self.start()

    def write_conf(self):
        with open(self.conf, "w") as f:
            f.write(self.config())

    def config(self):
        d = self.dir
        # as root the master would hand the workers to "nobody", who may not
        # enter this directory: keep them as the current user
        user = ""
        if os.geteuid() == 0:
            import grp
            import pwd
            user = "user %s %s;\n" % (pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name)
        blocks = []
        for s in self.servers:
            client = ""
            if s["client_ca"]:
                client = "        ssl_client_certificate %s;\n        ssl_verify_client on;\n" % s["client_ca"]
            blocks.append("""    server {{
        listen 127.0.0.1:{port} ssl{default};
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
{client}{location}    }}
""".format(port=self.port, default=" default_server" if s["default"] else "", name=s["name"] or "_",
                cert=s["cert"], key=s["key"], client=client, location=self.location()))
        return """# written by tests/tls/tlsnginx.py; run as
#   nginx -p {d}/ -c {d}/nginx.conf -e {d}/error.log
{user}worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    log_format tls '$remote_addr "$request" $status sni="$ssl_server_name" proto=$ssl_protocol '
                   'verify=$ssl_client_verify dn="$ssl_client_s_dn" server=$server_name';
    access_log {d}/access.log tls;
    client_body_temp_path {d}/client_body_temp;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
{blocks}{plain}}}
""".format(d=d, user=user, workers=self.worker_processes, blocks="".join(blocks), plain=self.plain_block())

    def location(self):
        """Every path proxied to the upstream as a WebSocket, for as long as it lasts."""
        return """        location / {{
            proxy_pass http://127.0.0.1:{up};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_connect_timeout 2s;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
""".format(up=self.upstream_port)

    def plain_block(self):
        if not self.plain_port:
            return ""
        return """    server {{
        listen 127.0.0.1:{port};
{location}    }}
""".format(port=self.plain_port, location=self.location())

    def start(self, timeout=5.0):
        out = open(os.path.join(self.dir, "nginx.stderr"), "a")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir + "/", "-c", self.conf, "-e", self.error_log],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     preexec_fn=_die_with_parent if self.die_with_parent else None)
        out.close()
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited with %s: %s" % (self.proc.returncode, self.why()))
            if self.servers and self.presented() == self.expected():
                return
            if not self.servers and self.listening():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("nginx did not %s within %.0f s: %s" % ("serve TLS" if self.servers else "listen", timeout, self.why()))

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.plain_port), 0.2).close()
            return True
        except OSError:
            return False

    def url(self, path="/"):
        """The plain listener's ws:// URL."""
        return "ws://127.0.0.1:%d%s" % (self.plain_port, path)

    # Popen-like, for a watchdog that kills what it tracked
    def poll(self):
        return self.proc.poll() if self.proc else 0

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()

    def expected(self, sni="localhost"):
        """DER of the certificate the server block for sni should present."""
        pick = [s for s in self.servers if s["name"] == sni] or [s for s in self.servers if s["default"]] or self.servers
        return pem_to_der(pick[0]["cert"])

    def presented(self, sni="localhost"):
        return presented_cert(self.port, sni)

    def reconfigure(self, servers, timeout=5.0):
        """New server blocks, then a reload (SIGHUP to the master); returns once
        new connections get the new certificate."""
        self.servers = servers
        self.write_conf()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout * SLOW
        want = self.expected()
        while time.monotonic() < deadline:
            if self.presented() == want:
                return True
            time.sleep(0.02)
        raise RuntimeError("nginx did not pick up the new certificate within %.0f s: %s" % (timeout, self.why()))

    def restart(self):
        self.stop()
        self.start()

    def why(self):
        text = "".join(read_text(os.path.join(self.dir, name)) for name in ("nginx.stderr", "error.log"))
        lines = [ln for ln in text.splitlines() if "[emerg]" in ln or "[alert]" in ln or "[crit]" in ln]
        return " | ".join((lines or text.splitlines() or ["(no output)"])[-3:])

    def access(self):
        return read_text(self.access_log)

    def wait_access(self, pattern, timeout=3.0):
        """Until the access log matches; nginx writes a WebSocket's line (101)
        only when that connection ends."""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            if re.search(pattern, self.access()):
                return True
            time.sleep(0.02)
        return re.search(pattern, self.access()) is not None

    def errors(self):
        return read_text(self.error_log)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)        # fast shutdown: the master stops its worker
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pem_to_der(path):
    with open(path) as f:
        text = f.read()
    first = text[:text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    return ssl.PEM_cert_to_DER_cert(first)


def presented_cert(port, sni="localhost", timeout=1.0):
    """DER of the certificate a TLS server presents (not verified), or None."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                return tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None



def serve_main(argv):
    """python3 tests/tls/tlsnginx.py serve --upstream PORT --dir DIR [--plain]:
    nginx in front of 127.0.0.1:PORT for a program that is not Python (the
    benchmark). Prints one line, "listening TLS_PORT PLAIN_PORT CA_FILE"
    (PLAIN_PORT 0 without --plain; the server certificate is for localhost and
    127.0.0.1), then runs until stdin ends or SIGTERM, and stops nginx."""
    import argparse
    ap = argparse.ArgumentParser(prog="tlsnginx.py serve")
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--dir", required=True, help="certificates and nginx's files go here")
    ap.add_argument("--plain", action="store_true", help="also a plain ws:// listener")
    args = ap.parse_args(argv)
    try:
        certs = make_certs(os.path.abspath(os.path.join(args.dir, "certs")))
        ng = Nginx("front", args.upstream, [tls_server(os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))],
                   args.dir, plain=args.plain, die_with_parent=True)
    except (Skip, RuntimeError, OSError) as e:
        print("error %s" % e, flush=True)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: (ng.stop(), os._exit(0)))
    print("listening %d %d %s" % (ng.port, ng.plain_port or 0, os.path.join(certs, "ca.pem")), flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        ng.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve_main(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
