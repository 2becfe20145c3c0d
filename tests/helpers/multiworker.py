"""Runs a two-worker MultiWorkerMirroredStrategy cluster on 127.0.0.1 and reports.

Meant to run inside a private network namespace (``unshare -n python multiworker.py SPEC``):
TensorFlow's gRPC server binds every interface whatever TF_CONFIG says. It brings the
namespace's loopback up, starts the two workers with their TF_CONFIG, optionally kills both
(SIGKILL) once the chief has written a checkpoint at or past a given step, waits for them
with a deadline, and prints one JSON line: return codes, outputs, whether it killed them.
"""

import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

WORKER = r"""
import json, sys
import numpy as np
from alexnet_lib.distribute import make_strategy
strategy = make_strategy("multiworker")
from alexnet_lib.config import TrainConfig
from alexnet_lib.train import Trainer
spec = json.loads(sys.argv[1])
trainer = Trainer(TrainConfig(**spec["config"]), strategy=strategy)
trainer.fit()
index = json.loads(__import__("os").environ["TF_CONFIG"])["task"]["index"]
np.savez(f"{spec['out']}/weights-{index}.npz", *[v.numpy() for v in trainer.model.weights])
print("optimizer iterations", int(trainer.optimizer.iterations.numpy()), flush=True)
"""


def loopback_up() -> None:
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def latest_step(checkpoints: Path) -> int:
    state = checkpoints / "checkpoint"
    if not state.exists():
        return -1
    text = state.read_text()
    steps = [int(part.split("ckpt-")[1].split('"')[0]) for part in text.splitlines()
             if "ckpt-" in part]
    return max(steps, default=-1)


def main() -> None:
    spec = json.loads(sys.argv[1])
    loopback_up()
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                     "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.time() + spec.get("timeout", 300)
    killed = False
    kill_at = spec.get("kill_at_step")
    checkpoints = Path(spec["config"]["run_dir"]) / "checkpoints"
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        if kill_at is not None and not killed and latest_step(checkpoints) >= kill_at:
            for p in procs:
                p.send_signal(signal.SIGKILL)
            killed = True
        time.sleep(0.02)
    timed_out = any(p.poll() is None for p in procs)
    for p in procs:
        if p.poll() is None:
            p.kill()
    outputs = [p.communicate()[0] for p in procs]
    print(json.dumps({"returncodes": [p.returncode for p in procs], "outputs": outputs,
                      "killed": killed, "timed_out": timed_out}))


if __name__ == "__main__":
    main()
