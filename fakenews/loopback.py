"""TensorFlow's gRPC servers kept on loopback when the whole multi_worker cluster is this
machine.

A multi_worker training process starts a TensorFlow gRPC server that runs whatever graph
a peer sends and hands out every tensor it holds, with no authentication. TensorFlow
binds it to every interface (`[::]` or `0.0.0.0`, hard-coded in GrpcServer::Init)
whatever host TF_CONFIG names, so two workers on one laptop also serve anyone on its
network. No option of TensorFlow's changes that. So when every host in TF_CONFIG's
cluster is a loopback address, the stage re-executes itself, before TensorFlow starts,
under a small LD_PRELOAD library that turns a bind to the wildcard address into a bind to
loopback (the IPv4-mapped 127.0.0.1 for a dual-stack socket, so IPv4 peers still reach
it). When the cluster names other hosts, the workers must be reachable from them, and
TensorFlow binds as it always does: keep those ports on a private network
(docs/distributed-training.md).

The library is the C below, built with the system's C compiler on first use into
~/.cache/fakenews/ (XDG_CACHE_HOME); every bind of the confined process goes through it.
After the strategy starts, `check_listeners` fails the stage if any socket of the process
still listens beyond loopback, so a library that did not load cannot pass unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from fakenews.errors import PipelineError
from fakenews.processes import is_loopback

CONFINED = "FAKENEWS_LOOPBACK_BIND"  # set in the re-executed process
SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

/* bind(2), with the wildcard address replaced by loopback */
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in4;
        memcpy(&in4, addr, sizeof in4);
        if (in4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (struct sockaddr *)&in4, sizeof in4);
        }
    } else if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, addr, sizeof in6);
        if (IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr)) {
            static const unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                                     0, 0, 0xff, 0xff, 127, 0, 0, 1};
            memcpy(&in6.sin6_addr, mapped, sizeof mapped);
            if (real_bind(fd, (struct sockaddr *)&in6, sizeof in6) == 0) return 0;
            in6.sin6_addr = in6addr_loopback; /* an IPv6-only socket: ::1 */
            return real_bind(fd, (struct sockaddr *)&in6, sizeof in6);
        }
    }
    return real_bind(fd, addr, len);
}
"""


def cluster_hosts(tf_config: str | None = None) -> list[str]:
    """Every host TF_CONFIG's cluster names (`host:port` entries, IPv6 in brackets)."""
    config = json.loads(tf_config if tf_config is not None else os.environ.get("TF_CONFIG", "{}"))
    return [
        address.rsplit(":", 1)[0].strip("[]")
        for tasks in (config.get("cluster") or {}).values()
        for address in tasks
    ]


def loopback_cluster(tf_config: str | None = None) -> bool:
    hosts = cluster_hosts(tf_config)
    return bool(hosts) and all(is_loopback(host) for host in hosts)


def library() -> Path:
    """The compiled bind library, built once per version of its source."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fakenews"
    built = cache / f"loopback-bind-{hashlib.sha256(SOURCE.encode()).hexdigest()[:12]}.so"
    if built.exists():
        return built
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise PipelineError(
            "multi_worker training on a loopback cluster keeps TensorFlow's gRPC servers off "
            "the network with a small C library, and there is no C compiler (cc) to build it: "
            "install one (Debian: apt-get install gcc libc6-dev)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        source, output = Path(work) / "bind.c", Path(work) / built.name
        source.write_text(SOURCE, encoding="utf-8")
        compiled = subprocess.run(
            [compiler, "-shared", "-fPIC", "-O2", "-o", str(output), str(source), "-ldl"],
            capture_output=True,
            text=True,
        )
        if compiled.returncode != 0:
            raise PipelineError(f"building {built.name} failed: {compiled.stderr.strip()[-400:]}")
        os.replace(output, built)
    return built


def confine_to_loopback() -> None:
    """Re-execute this stage under the bind library when the cluster is this machine alone;
    returns at once when it already runs under it, or when the cluster names other hosts."""
    if os.environ.get(CONFINED) == "1" or not loopback_cluster():
        return
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main is None or not main.name.startswith("stages."):
        raise PipelineError(
            "multi_worker training on a loopback cluster runs each worker as a process of its "
            "own (python -m stages.<stage>), which re-executes itself to keep TensorFlow's "
            "gRPC server on loopback"
        )
    preload = " ".join(filter(None, [str(library()), os.environ.get("LD_PRELOAD")]))
    env = {**os.environ, "LD_PRELOAD": preload, CONFINED: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", main.name, *sys.argv[1:]], env)


def check_listeners(stage: str) -> None:
    """Fail unless every socket this process listens on is on loopback, when it should be."""
    if os.environ.get(CONFINED) != "1":
        return
    public = [
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in psutil.Process().net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and not _loopback_address(c.laddr.ip)
    ]
    if public:
        raise PipelineError(
            f"{stage}: TensorFlow's gRPC server listens on {', '.join(public)}, beyond loopback, "
            f"although the cluster is this machine alone; stopped ({CONFINED} did not take)"
        )


def _loopback_address(ip: str) -> bool:
    return is_loopback(ip.removeprefix("::ffff:"))
