"""Benchmarks of kleened on this host, printed as figures and ratios against baselines measured in
the same run. Run as root with a daemon started by scripts/quickstart.sh (socket
/var/run/kleened.sock, image `base`):

    sudo .cache/pyklee/bin/python scripts/bench.py [--runs 20] [--klee target/release/klee]

It needs httpx and websockets, which the test command installs with the Python client into
.cache/pyklee. Measured:
  1. `klee run --rm base /bin/true`, end to end (median, spread);
  2. create + start + exit + remove through the API (HTTP and the /exec/start websocket);
  3. the floor: the same command run bare with `unshare -fpmuin --mount-proc -R <rootfs> /bin/true`;
  4. the daemon's RSS when idle and with 100 stopped containers;
  5. output throughput of `klee start` on a container that cats a 1 GiB file, against `cat` of it;
  6. the start of a vnet container on a bridge network against a host-network one (the
     /exec/start websocket of a /bin/true container to its end), alternating, so the ratio is of
     the same moment. The network
     has no gateway and no NAT, so nothing is routed on the host; it is removed at the end.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

import httpx
import websockets

SOCKET = "/var/run/kleened.sock"


def api():
    return httpx.Client(transport=httpx.HTTPTransport(uds=SOCKET), base_url="http://localhost", timeout=60)


def timed(fn, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def describe(samples):
    q = statistics.quantiles(samples, n=10)
    return f"median {statistics.median(samples):7.1f} ms   p10 {q[0]:7.1f}   p90 {q[-1]:7.1f}   (n={len(samples)})"


async def exec_start(exec_id):
    async with websockets.unix_connect(SOCKET, uri="ws://localhost/exec/start") as ws:
        await ws.send(json.dumps({"exec_id": exec_id, "attach": True, "start_container": True}))
        try:
            while True:
                await ws.recv()
        except websockets.exceptions.ConnectionClosed:
            return json.loads(ws.close_reason)


def api_cycle(client):
    cid = client.post("/containers/create", json={"image": "base", "cmd": ["/bin/true"], "network_driver": "host"}).json()["id"]
    eid = client.post("/exec/create", json={"container_id": cid}).json()["id"]
    closing = asyncio.run(exec_start(eid))
    assert closing["message"].endswith("exit-code 0"), closing
    assert client.delete(f"/containers/{cid}").status_code == 200


def start_only(client, network=None):
    """Milliseconds from /exec/start to the end of the container's /bin/true, for a container made
    (and connected to `network`, vnet) beforehand and removed afterwards."""
    driver = "vnet" if network else "host"
    cid = client.post("/containers/create", json={"image": "base", "cmd": ["/bin/true"], "network_driver": driver}).json()["id"]
    if network:
        answer = client.post("/networks/connect", json={"container": cid, "network": network, "ip_address": "<auto>"})
        assert answer.status_code == 204, answer.text
    eid = client.post("/exec/create", json={"container_id": cid, "cmd": [], "env": [], "user": "", "tty": False}).json()["id"]
    start = time.perf_counter()
    asyncio.run(exec_start(eid))
    took = (time.perf_counter() - start) * 1000
    client.delete(f"/containers/{cid}")
    return took


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def daemon_pid(pidfile):
    try:
        with open(pidfile) as f:
            return int(f.read().strip())
    except OSError:
        sys.exit(f"no {pidfile}: start kleened with scripts/quickstart.sh (or give --pidfile)")


def dataset_mountpoint(dataset):
    return subprocess.run(["zfs", "list", "-H", "-o", "mountpoint", dataset], capture_output=True, text=True, check=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--klee", default="target/release/klee")
    parser.add_argument("--pidfile", default="/var/lib/kleene-quickstart/kleened.pid")
    args = parser.parse_args()
    klee = args.klee
    client = api()
    image = client.get("/images/base/inspect").json()
    rootfs = dataset_mountpoint(image["dataset"])
    pid = daemon_pid(args.pidfile)

    print(f"kleened pid {pid}, image base = {image['id']}, rootfs {rootfs}, {args.runs} runs each\n")
    run = lambda: subprocess.run([klee, "run", "--rm", "base", "/bin/true"], check=True, stdout=subprocess.DEVNULL)
    bare = lambda: subprocess.run(["unshare", "-fpmuin", "--mount-proc", "-R", rootfs, "/bin/true"], check=True)
    for warm in (run, bare):
        warm()
    klee_run = timed(run, args.runs)
    cycle = timed(lambda: api_cycle(client), args.runs)
    floor = timed(bare, args.runs)
    base = statistics.median(floor)
    print("container start to exit")
    print(f"  klee run --rm base /bin/true        {describe(klee_run)}   x{statistics.median(klee_run) / base:.1f} of floor")
    print(f"  API create+start+exit+remove        {describe(cycle)}   x{statistics.median(cycle) / base:.1f} of floor")
    print(f"  floor: unshare -fpmuin -R /bin/true {describe(floor)}")

    idle = rss_kb(pid)
    made = []
    for _ in range(100):
        made.append(client.post("/containers/create", json={"image": "base", "cmd": ["/bin/true"], "network_driver": "host"}).json()["id"])
    loaded = rss_kb(pid)
    for cid in made:
        client.delete(f"/containers/{cid}")
    print("\ndaemon memory (VmRSS)")
    print(f"  idle                          {idle / 1024:6.1f} MiB")
    print(f"  with 100 stopped containers   {loaded / 1024:6.1f} MiB   x{loaded / idle:.2f} of idle")

    size = 1 << 30
    cid = client.post("/containers/create", json={"image": "base", "name": "bench-stream", "network_driver": "host",
                                                  "cmd": ["/bin/sh", "-c", f"head -c {size} /dev/urandom > /big"]}).json()["id"]
    subprocess.run([klee, "start", cid], check=True)
    client.post(f"/containers/{cid}/update", json={"cmd": ["/bin/cat", "/big"], "name": None, "user": None, "env": None,
                                                   "jail_param": None, "persist": None, "restart_policy": None})
    big = os.path.join(dataset_mountpoint(client.get(f"/containers/{cid}/inspect").json()["container"]["dataset"]), "big")
    subprocess.run(["cat", big], check=True, stdout=subprocess.DEVNULL)  # warm the cache
    host = timed(lambda: subprocess.run(f"cat {big} | cat > /dev/null", shell=True, check=True), 3)
    streamed = timed(lambda: subprocess.run(f"{klee} start {cid} | cat > /dev/null", shell=True, check=True), 3)
    client.delete(f"/containers/{cid}")
    gib = size / (1 << 30)
    print("\noutput throughput, 1 GiB")
    print(f"  cat file | cat (host)         {gib / (statistics.median(host) / 1000):6.2f} GiB/s")
    print(f"  klee start (cat file) | cat   {gib / (statistics.median(streamed) / 1000):6.2f} GiB/s   x{statistics.median(host) / statistics.median(streamed):.2f} of host")

    # The network makes the daemon turn IPv4 forwarding on; put it back as it was afterwards.
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forwarding = f.read()
    answer = client.post("/networks/create", json={"name": "bench-net", "type": "bridge", "subnet": "10.250.0.0/24",
                                                   "gateway": "", "nat": ""})
    assert answer.status_code == 201, answer.text
    try:
        start_only(client, "bench-net")  # warm
        host_runs, vnet_runs = [], []
        for _ in range(args.runs):
            host_runs.append(start_only(client))
            vnet_runs.append(start_only(client, "bench-net"))
    finally:
        client.delete("/networks/bench-net")
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(forwarding)
    extra = statistics.median(vnet_runs) - statistics.median(host_runs)
    print("\nvnet on a bridge against the host network (/exec/start of /bin/true to its end)")
    print(f"  host network                  {describe(host_runs)}")
    print(f"  vnet, one network             {describe(vnet_runs)}   x{statistics.median(vnet_runs) / statistics.median(host_runs):.2f} of host, {extra:+.1f} ms")


if __name__ == "__main__":
    main()
