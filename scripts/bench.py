"""Benchmarks of kleened on this host, printed as figures and ratios against baselines measured in
the same run. Run as root with a daemon started by scripts/quickstart.sh (socket
/var/run/kleened.sock, image `base`):

    sudo .cache/pyklee/bin/python scripts/bench.py [--runs 20] [--only run,stream,scale,concurrent]

It needs httpx and websockets, which the test command installs with the Python client into
.cache/pyklee. The sections (all by default; `--only` picks some, in this order):

  run         `klee run --rm base /bin/true` end to end, create + start + exit + remove through
              the API (HTTP and the /exec/start websocket), the floor (the same command run bare
              with `unshare -fpmuin --mount-proc -R <rootfs> /bin/true`) and, when podman is
              installed, `podman run --rm --network none <busybox image> /bin/true`: one of each
              per round, the order rotating, so all of them see the same machine load;
  profile     where a run's time goes: each API step of create + start + exit + remove timed on
              its own (POST /containers/create, POST /exec/create, the /exec/start websocket to its
              close, DELETE /containers/{id}), against a bare `zfs clone` of the image snapshot and
              `zfs destroy` of that clone (what the create and the background removal cost in
              zfs-fuse) and the unshare floor;
  stream      output throughput of `klee run` of `head -c 1G /dev/zero` (busybox's head writes
              4 KiB at a time) and of `dd bs=64k`, into /dev/null on the client side, against the
              same busybox command piped into `cat > /dev/null` on the host, alternating;
  logs        what keeping container logs costs a stream: `klee run` of `dd bs=4k` (1 GiB) on
              the daemon against the same on a second daemon started for the section with
              `container_log_max_files: 0` (no logs) on a sibling dataset of its own, alternating;
              the second daemon and its dataset are removed at the end;
  file        output throughput of `klee start` on a container that cats a 1 GiB file of its
              own, against `cat` of that file on the host;
  concurrent  20 `klee run --rm base /bin/true` at once against 20 one after the other
              (throughput ratio), the background reaper drained before each batch;
  vnet        the start of a vnet container on a bridge network against a host-network one (the
              /exec/start websocket of a /bin/true container to its end), alternating, so the
              ratio is of the same moment. The network has no gateway and no NAT, so nothing is
              routed on the host; it is removed at the end;
  memory      the daemon's RSS when idle and with 100 stopped containers;
  build       `klee build` of a Dockerfile of six steps (COPY of a 16 MiB context file, RUNs that
              write files) with --no-cache, against a rebuild of it with nothing changed (every
              step from the build cache), alternating; then the same with one RUN that works for a
              while (a 300 000-round shell loop); the images are removed at the end;
  scale       with 1000 stopped containers (created through the API one after the other):
              `klee lsc -a` (median of 10) against the same with none, the create time of the
              1000th container against the 10th (median of the ten around each), the daemon's
              RSS idle against with 1000; to tell where a slowdown lives, a bare `zfs clone` (and
              destroy) of the image snapshot and `GET /containers/list?all=true` with none and
              with 1000; they are removed at the end and the run waits for the background reaper
              to destroy their datasets.

Each figure is printed with the CPU pressure of its section (`some avg10` of /proc/pressure/cpu
at its start and end), as the machines are shared. A markdown table of everything measured, with
the targets of issue 14, ends the output.

podman (optional): `apt-get install -y podman runc` and
`podman import .cache/base-busybox.tar kleene-busybox` (`scripts/base-image.sh busybox
.cache/base-busybox.tar` makes the archive). The script first tries plain `podman run`; where
crun cannot run (cgroup v1 and v2 mixed) or the host may not raise rlimits, it falls back to
`--runtime runc` with rlimits under the host's (--podman-args sets the flags instead).
"""

import argparse
import asyncio
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import httpx
import websockets

SOCKET = "/var/run/kleened.sock"
SECTIONS = ("run", "profile", "stream", "logs", "file", "concurrent", "vnet", "memory", "build", "scale")
GIB = 1 << 30
PODMAN_INSTALL = "apt-get install -y podman runc && podman import .cache/base-busybox.tar kleene-busybox"
# Where crun refuses the cgroup layout and podman's default rlimits exceed what root may set.
PODMAN_FALLBACK = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def api():
    return httpx.Client(transport=httpx.HTTPTransport(uds=SOCKET), base_url="http://localhost", timeout=60)


def timed(fn, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def once(fn):
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def spread(samples):
    """Median, 10th and 90th percentile."""
    if len(samples) < 2:
        return samples[0], samples[0], samples[0]
    q = statistics.quantiles(samples, n=10)
    return statistics.median(samples), q[0], q[-1]


def describe(samples):
    median, p10, p90 = spread(samples)
    return f"median {median:7.1f} ms   p10 {p10:7.1f}   p90 {p90:7.1f}   (n={len(samples)})"


def pressure():
    """`some avg10` of /proc/pressure/cpu, in percent (None where the kernel has no PSI)."""
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


class Load:
    """The CPU pressure over a section, printed with its figures."""

    def __init__(self):
        self.start = pressure()
        self.end = None

    def __str__(self):
        if self.end is None:  # the section's end: when its figures are first printed
            self.end = pressure()
        if self.start is None or self.end is None:
            return "n/a"
        return f"{self.start:.0f}–{self.end:.0f} %"


class Report:
    """The rows of the closing markdown table."""

    def __init__(self):
        self.rows = []

    def add(self, what, median="", p10="", p90="", ratio="", target="", met="", load=""):
        self.rows.append((what, median, p10, p90, ratio, target, met, str(load)))

    def print(self):
        print("\n| what | median | p10 | p90 | ratio | target | met | cpu some avg10 |")
        print("|---|---|---|---|---|---|---|---|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")


def ms(value):
    return f"{value:.1f} ms"


def verdict(ok):
    return "yes" if ok else "**no**"


async def exec_start(exec_id):
    async with websockets.unix_connect(SOCKET, uri="ws://localhost/exec/start") as ws:
        await ws.send(json.dumps({"exec_id": exec_id, "attach": True, "start_container": True}))
        try:
            while True:
                await ws.recv()
        except websockets.exceptions.ConnectionClosed:
            return json.loads(ws.close_reason)


def create(client, cmd=("/bin/true",), **extra):
    answer = client.post("/containers/create", json={"image": "base", "cmd": list(cmd), "network_driver": "host", **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def api_cycle(client):
    cid = create(client)
    eid = client.post("/exec/create", json={"container_id": cid}).json()["id"]
    closing = asyncio.run(exec_start(eid))
    assert closing["message"].endswith("exit-code 0"), closing
    assert client.delete(f"/containers/{cid}").status_code == 200


def start_only(client, network=None):
    """Milliseconds from /exec/start to the end of the container's /bin/true, for a container made
    (and connected to `network`, vnet) beforehand and removed afterwards."""
    driver = "vnet" if network else "host"
    cid = create(client, network_driver=driver)
    if network:
        answer = client.post("/networks/connect", json={"container": cid, "network": network, "ip_address": "<auto>"})
        assert answer.status_code == 204, answer.text
    eid = client.post("/exec/create", json={"container_id": cid, "cmd": [], "env": [], "user": "", "tty": False}).json()["id"]
    start = time.perf_counter()
    asyncio.run(exec_start(eid))
    took = (time.perf_counter() - start) * 1000
    client.delete(f"/containers/{cid}")
    return took


def destroy_patiently(dataset, attempts=100):
    """zfs destroy, tried again while zfs-fuse answers "busy" (as the daemon's reaper does)."""
    for _ in range(attempts):
        if subprocess.run(["zfs", "destroy", dataset], stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"zfs destroy {dataset} kept failing")


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


def datasets_under(parent):
    answer = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", parent], capture_output=True, text=True)
    return {line for line in answer.stdout.split() if line != parent}


class Bench:
    def __init__(self, args):
        self.args = args
        self.klee = args.klee
        self.client = api()
        image = self.client.get("/images/base/inspect").json()
        self.image_dataset = image["dataset"]
        self.rootfs = dataset_mountpoint(image["dataset"])
        # Container datasets are siblings' children: <root>/image/<id> -> <root>/container.
        self.containers_parent = image["dataset"].rsplit("/", 2)[0] + "/container"
        self.pid = daemon_pid(args.pidfile)
        self.report = Report()
        print(f"kleened pid {self.pid}, image base = {image['id']}, rootfs {self.rootfs}, {args.runs} runs each, "
              f"{os.cpu_count()} CPUs, cpu pressure some avg10 {pressure()} %\n")

    def klee_run(self, *cmd, stdout=subprocess.DEVNULL):
        subprocess.run([self.klee, "run", "--rm", "base", *cmd], check=True, stdout=stdout, stderr=subprocess.DEVNULL)

    def wait_for_reaper(self, keep, limit=1800):
        """Waits until the only container datasets left are those in `keep` (the reaper destroys
        removed containers' datasets in the background); answers the seconds it took."""
        start = time.perf_counter()
        while datasets_under(self.containers_parent) - keep:
            if time.perf_counter() - start > limit:
                left = len(datasets_under(self.containers_parent) - keep)
                print(f"  (the reaper still had {left} datasets to destroy after {limit} s)")
                break
            time.sleep(1)
        return time.perf_counter() - start

    def podman(self):
        """The argv of a podman run of /bin/true, or None (having said why)."""
        args = self.args
        if not shutil.which("podman"):
            print(f"  podman is not installed, so no podman figures: {PODMAN_INSTALL}")
            return None
        if subprocess.run(["podman", "image", "exists", args.podman_image]).returncode != 0:
            print(f"  podman has no image {args.podman_image}: podman import .cache/base-busybox.tar {args.podman_image}")
            return None
        candidates = [shlex.split(args.podman_args)] if args.podman_args is not None else [[], PODMAN_FALLBACK]
        for extra in candidates:
            argv = ["podman", "run", "--rm", "--network", "none", *extra, args.podman_image, "/bin/true"]
            tried = subprocess.run(argv, capture_output=True, text=True)
            if tried.returncode == 0:
                return argv
            print(f"  ({shlex.join(argv)} failed: {tried.stderr.strip().splitlines()[-1:]})")
        print("  podman cannot run a container here; no podman figures")
        return None

    # --- sections -------------------------------------------------------------------------------

    def run(self):
        runs = self.args.runs
        contenders = {
            "klee": lambda: self.klee_run("/bin/true"),
            "api": lambda: api_cycle(self.client),
            "floor": lambda: subprocess.run(["unshare", "-fpmuin", "--mount-proc", "-R", self.rootfs, "/bin/true"], check=True),
        }
        print("container start to exit (one of each per round, the order rotating)")
        podman = self.podman()
        if podman:
            contenders["podman"] = lambda: subprocess.run(podman, check=True)
        load = Load()
        for fn in contenders.values():
            fn()  # warm
        samples = {name: [] for name in contenders}
        names = list(contenders)
        for i in range(runs):
            for name in names[i % len(names):] + names[:i % len(names)]:
                samples[name].append(once(contenders[name]))
        floor = statistics.median(samples["floor"])
        klee = statistics.median(samples["klee"])
        print(f"  klee run --rm base /bin/true        {describe(samples['klee'])}   x{klee / floor:.1f} of floor")
        print(f"  API create+start+exit+remove        {describe(samples['api'])}   x{statistics.median(samples['api']) / floor:.1f} of floor")
        print(f"  floor: unshare -fpmuin -R /bin/true {describe(samples['floor'])}")
        if podman:
            pm = statistics.median(samples["podman"])
            print(f"  podman run --rm --network none      {describe(samples['podman'])}   x{pm / floor:.1f} of floor")
            print(f"  klee run against podman run         x{klee / pm:.2f}   ({shlex.join(podman)})")
        print(f"  cpu pressure {load}")
        to_floor = klee / floor
        self.report.add("`klee run --rm base /bin/true`", *map(ms, spread(samples["klee"])),
                        f"{to_floor:.1f}x floor" + (f", {klee / pm:.2f}x podman" if podman else ""),
                        "≤ 12x floor" + (", ≤ 0.33x podman" if podman else ""),
                        verdict(to_floor <= 12 and (not podman or klee / pm <= 0.33)), load)
        if podman:
            self.report.add("`podman run --rm --network none` (runc)" if "runc" in podman else "`podman run --rm --network none`",
                            *map(ms, spread(samples["podman"])), f"{pm / floor:.1f}x floor", load=load)
        self.report.add("create + start + exit + remove, API", *map(ms, spread(samples["api"])),
                        f"{statistics.median(samples['api']) / floor:.1f}x floor", load=load)
        self.report.add("floor: `unshare -fpmuin --mount-proc -R <rootfs> /bin/true`", *map(ms, spread(samples["floor"])), "1", load=load)

    def profile(self):
        client, runs = self.client, self.args.runs
        steps = {name: [] for name in ("create", "exec create", "start to exit", "remove", "zfs clone", "zfs destroy", "floor")}
        snapshot = self.image_dataset + "@image"
        load = Load()
        for i in range(runs):
            start = time.perf_counter()
            cid = create(client)
            steps["create"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            eid = client.post("/exec/create", json={"container_id": cid}).json()["id"]
            steps["exec create"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            asyncio.run(exec_start(eid))
            steps["start to exit"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            assert client.delete(f"/containers/{cid}").status_code == 200
            steps["remove"].append((time.perf_counter() - start) * 1000)
            clone = f"{self.containers_parent}/bench-profile-{i}"
            steps["zfs clone"].append(once(lambda: subprocess.run(["zfs", "clone", snapshot, clone], check=True)))
            steps["zfs destroy"].append(once(lambda: destroy_patiently(clone)))
            steps["floor"].append(once(lambda: subprocess.run(["unshare", "-fpmuin", "--mount-proc", "-R", self.rootfs, "/bin/true"], check=True)))
        total = sum(statistics.median(steps[k]) for k in ("create", "exec create", "start to exit", "remove"))
        print(f"\nwhere a run goes, {runs} runs, each API step timed by the client (cpu pressure {load})")
        for name, samples in steps.items():
            share = f"{statistics.median(samples) / total * 100:5.1f} % of the API steps" if name in ("create", "exec create", "start to exit", "remove") else ""
            print(f"  {name:15} {describe(samples)}   {share}")
            self.report.add(f"profile: {name}", *map(ms, spread(samples)), share.strip(), load=load)

    def stream(self):
        size = GIB
        runs = self.args.stream_runs
        busybox = os.path.join(self.rootfs, "bin", "busybox")
        # busybox's `head -c` writes 4 KiB at a time too, but spends ~5 ns of user time per byte
        # (0.2 GB/s on its own here): it would measure head, not the stream. dd's statistics go to
        # stderr, which klee run merges into its output, so the container's sh drops them.
        writers = [
            ("`dd if=/dev/zero bs=4k count=262144` (4 KiB writes)", "bs=4k", size // 4096, 0.5, 1.0),
            ("`dd if=/dev/zero bs=64k count=16384` (64 KiB writes)", "bs=64k", size // 65536, 0.8, None),
        ]
        print(f"\noutput throughput of klee run, 1 GiB into /dev/null, against the host pipe `busybox dd ... | cat > /dev/null` ({runs} runs each, alternating)")
        for label, bs, count, ratio_target, gbs_target in writers:
            load = Load()
            dd = f"dd if=/dev/zero {bs} count={count} 2>/dev/null"
            cmd = ["/bin/sh", "-c", dd]
            counted = subprocess.run(f"{shlex.join([self.klee, 'run', '--rm', 'base', *cmd])} | wc -c",
                                     shell=True, capture_output=True, text=True, check=True).stdout.strip()
            assert int(counted) == size, f"{cmd}: {counted} bytes through klee run, not {size}"
            host_line = f"{busybox} {dd} | cat > /dev/null"
            host, klee = [], []
            for _ in range(runs):
                host.append(once(lambda: subprocess.run(host_line, shell=True, check=True)))
                klee.append(once(lambda: self.klee_run(*cmd)))
            gb = size / 1e9
            host_gbs = gb / (statistics.median(host) / 1000)
            klee_gbs = gb / (statistics.median(klee) / 1000)
            ratio = klee_gbs / host_gbs
            print(f"  {label:42} host pipe {host_gbs:5.2f} GB/s   klee run {klee_gbs:5.2f} GB/s   x{ratio:.2f} of host   (cpu pressure {load})")
            target = f"≥ {ratio_target}x host" + (f", ≥ {gbs_target} GB/s" if gbs_target else "")
            ok = ratio >= ratio_target and (gbs_target is None or klee_gbs >= gbs_target)
            self.report.add(f"`klee run` of {label}, into /dev/null", f"{klee_gbs:.2f} GB/s", "", "",
                            f"{ratio:.2f}x host pipe ({host_gbs:.2f} GB/s)", target, verdict(ok), load)

    def logs(self):
        runs = self.args.stream_runs
        root = self.image_dataset.rsplit("/", 2)[0]  # <root>/image/<id>
        other = root + "-bench-nologs"
        if subprocess.run(["zfs", "list", other], capture_output=True).returncode == 0:
            sys.exit(f"{other} exists (left by an interrupted run?): zfs destroy -r {other}")
        archive = next((a for a in (os.path.join(os.path.dirname(self.args.pidfile), "busybox.tar"), ".cache/base-busybox.tar")
                        if os.path.exists(a)), None)
        if archive is None:
            print("\nno busybox archive for the second daemon (scripts/base-image.sh busybox .cache/base-busybox.tar); no logs figures")
            return
        work = tempfile.mkdtemp(prefix="kleene-bench-nologs-")
        sock = os.path.join(work, "kleened.sock")
        with open(os.path.join(work, "config.yaml"), "w") as f:
            f.write(f"kleene_root: {other}\napi_listening_sockets:\n  - address: http://{sock}\n"
                    f"enable_logging: true\nlog_level: warning\nlog_file: {work}/kleened.log\n"
                    f"pidfile: {work}/kleened.pid\ncontainer_log_max_files: 0\n")
        subprocess.run(["zfs", "create", other], check=True)
        daemon = subprocess.Popen([self.args.kleened, "--config", os.path.join(work, "config.yaml")],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "kleened.stderr"), "w"))
        env = dict(os.environ, KLEE_HOST=f"http://{sock}")
        try:
            for _ in range(100):
                if subprocess.run([self.klee, "lsi"], env=env, capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            subprocess.run([self.klee, "image", "create", "fetch", f"file://{os.path.abspath(archive)}", "-t", "base"],
                           env=env, check=True, capture_output=True)
            cmd = ["/bin/sh", "-c", f"dd if=/dev/zero bs=4k count={GIB // 4096} 2>/dev/null"]

            def run(environ):
                subprocess.run([self.klee, "run", "--rm", "base", *cmd], env=environ, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            load = Load()
            run(env)  # warm
            on, off = [], []
            for _ in range(runs):
                off.append(once(lambda: run(env)))
                on.append(once(lambda: run(os.environ)))
            gb = GIB / 1e9
            on_gbs, off_gbs = gb / (statistics.median(on) / 1000), gb / (statistics.median(off) / 1000)
            # Each round runs both, one after the other: the median of the rounds' ratios is less
            # swayed by the machine's load drifting than the ratio of the medians.
            ratio = statistics.median(b / a for a, b in zip(on, off))
            print(f"\nwhat logs cost a stream: klee run of dd bs=4k, 1 GiB into /dev/null ({runs} runs each, alternating)")
            print(f"  logs kept (the daemon)        {on_gbs:5.2f} GB/s  {describe(on)}")
            print(f"  no logs (a second daemon)     {off_gbs:5.2f} GB/s  {describe(off)}")
            print(f"  with logs against without     x{ratio:.2f} (median of the rounds' ratios; x{on_gbs / off_gbs:.2f} of the medians)   (cpu pressure {load})")
            self.report.add("`klee run` of `dd bs=4k` (1 GiB), logs kept", f"{on_gbs:.2f} GB/s", "", "",
                            f"{ratio:.2f}x without logs ({off_gbs:.2f} GB/s)", "≥ 0.9x without logs", verdict(ratio >= 0.9), load)
        finally:
            daemon.terminate()
            daemon.wait(60)
            for _ in range(120):
                if subprocess.run(["zfs", "destroy", "-r", other], capture_output=True).returncode == 0:
                    break
                time.sleep(0.5)
            else:
                print(f"  (could not destroy {other}: zfs destroy -r {other})")
            shutil.rmtree(work, ignore_errors=True)

    def file(self):
        client, klee = self.client, self.klee
        size = GIB
        load = Load()
        cid = create(client, ["/bin/sh", "-c", f"head -c {size} /dev/urandom > /big"], name="bench-stream")
        try:
            subprocess.run([klee, "start", cid], check=True)
            client.post(f"/containers/{cid}/update", json={"cmd": ["/bin/cat", "/big"], "name": None, "user": None, "env": None,
                                                           "jail_param": None, "persist": None, "restart_policy": None})
            big = os.path.join(dataset_mountpoint(client.get(f"/containers/{cid}/inspect").json()["container"]["dataset"]), "big")
            subprocess.run(["cat", big], check=True, stdout=subprocess.DEVNULL)  # warm the cache
            host = timed(lambda: subprocess.run(f"cat {big} | cat > /dev/null", shell=True, check=True), 3)
            streamed = timed(lambda: subprocess.run(f"{klee} start {cid} | cat > /dev/null", shell=True, check=True), 3)
        finally:
            client.delete(f"/containers/{cid}")
        gib = size / GIB
        host_rate = gib / (statistics.median(host) / 1000)
        rate = gib / (statistics.median(streamed) / 1000)
        print("\noutput throughput, 1 GiB")
        print(f"  cat file | cat (host)         {host_rate:6.2f} GiB/s")
        print(f"  klee start (cat file) | cat   {rate:6.2f} GiB/s   x{rate / host_rate:.2f} of host   (cpu pressure {load})")
        self.report.add("`klee start` of `cat <1 GiB file>`, into `cat`", f"{rate * GIB / 1e9:.2f} GB/s", "", "",
                        f"{rate / host_rate:.2f}x host `cat file \\| cat`", load=load)

    def concurrent(self, n=20):
        rounds = self.args.concurrent_rounds
        keep = datasets_under(self.containers_parent)
        argv = [self.klee, "run", "--rm", "base", "/bin/true"]

        def sequential():
            for _ in range(n):
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

        def together():
            procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL) for _ in range(n)]
            codes = [p.wait() for p in procs]
            assert codes == [0] * n, codes

        load = Load()
        self.klee_run("/bin/true")  # warm
        seq, conc = [], []
        for i in range(rounds):
            for batch, samples in ((sequential, seq), (together, conc)) if i % 2 == 0 else ((together, conc), (sequential, seq)):
                self.wait_for_reaper(keep)
                samples.append(once(batch))
        self.wait_for_reaper(keep)
        ratio = statistics.median(seq) / statistics.median(conc)
        print(f"\n{n} `klee run --rm base /bin/true`, {rounds} rounds, the reaper drained before each batch")
        print(f"  one after the other   {describe(seq)}   {n / (statistics.median(seq) / 1000):5.1f} runs/s")
        print(f"  all at once           {describe(conc)}   {n / (statistics.median(conc) / 1000):5.1f} runs/s")
        print(f"  throughput            x{ratio:.2f} at once   (cpu pressure {load})")
        self.report.add(f"{n} `klee run --rm` at once, against one after the other", ms(statistics.median(conc)), "", "",
                        f"{ratio:.2f}x the throughput ({ms(statistics.median(seq))} sequential)", load=load)

    def vnet(self):
        client, runs = self.client, self.args.runs
        load = Load()
        # The network makes the daemon turn IPv4 forwarding on; put it back as it was afterwards.
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            forwarding = f.read()
        answer = client.post("/networks/create", json={"name": "bench-net", "type": "bridge", "subnet": "10.250.0.0/24",
                                                       "gateway": "", "nat": ""})
        assert answer.status_code == 201, answer.text
        try:
            start_only(client, "bench-net")  # warm
            host_runs, vnet_runs = [], []
            for _ in range(runs):
                host_runs.append(start_only(client))
                vnet_runs.append(start_only(client, "bench-net"))
        finally:
            client.delete("/networks/bench-net")
            with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
                f.write(forwarding)
        extra = statistics.median(vnet_runs) - statistics.median(host_runs)
        print("\nvnet on a bridge against the host network (/exec/start of /bin/true to its end)")
        print(f"  host network                  {describe(host_runs)}")
        print(f"  vnet, one network             {describe(vnet_runs)}   x{statistics.median(vnet_runs) / statistics.median(host_runs):.2f} of host, {extra:+.1f} ms   (cpu pressure {load})")
        self.report.add("/exec/start to exit, vnet on a bridge", *map(ms, spread(vnet_runs)),
                        f"{statistics.median(vnet_runs) / statistics.median(host_runs):.2f}x host network ({extra:+.1f} ms)", load=load)

    def memory(self):
        client = self.client
        load = Load()
        idle = rss_kb(self.pid)
        made = []
        try:
            for _ in range(100):
                made.append(create(client))
            loaded = rss_kb(self.pid)
        finally:
            for cid in made:
                client.delete(f"/containers/{cid}")
        print("\ndaemon memory (VmRSS)")
        print(f"  idle                          {idle / 1024:6.1f} MiB")
        print(f"  with 100 stopped containers   {loaded / 1024:6.1f} MiB   x{loaded / idle:.2f} of idle")
        self.report.add("daemon VmRSS, with 100 stopped containers", f"{loaded / 1024:.1f} MiB", "", "", f"{loaded / idle:.2f}x idle ({idle / 1024:.1f} MiB)", load=load)

    def build(self):
        light = ("six steps: a 16 MiB COPY and three light RUNs", [
            "RUN cp /srv/data.bin /srv/copy.bin",
            "RUN i=0; while [ $i -lt 200 ]; do echo $i > /srv/f$i; i=$((i+1)); done",
            "RUN sha256sum /srv/data.bin > /srv/sum",
        ])
        heavy = ("the same with a RUN that works for a while (a shell loop of 300 000 rounds, as a compile or an install would)", [
            "RUN cp /srv/data.bin /srv/copy.bin",
            "RUN i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo $i > /srv/rounds",
            "RUN sha256sum /srv/data.bin > /srv/sum",
        ])
        for name, (what, runs_) in (("light", light), ("heavy", heavy)):
            self.build_one(name, what, runs_)

    def build_one(self, name, what, run_lines):
        import tempfile
        runs = max(3, self.args.runs // 4)
        context = tempfile.mkdtemp(prefix="kleene-bench-build-")
        with open(os.path.join(context, "data.bin"), "wb") as f:
            f.write(os.urandom(16 << 20))
        with open(os.path.join(context, "Dockerfile"), "w") as f:
            f.write("\n".join(["FROM base", "WORKDIR /srv", "COPY data.bin /srv/", *run_lines, "CMD cat /srv/sum"]) + "\n")
        built = []

        def build(tag, *flags):
            subprocess.run([self.klee, "build", "-q", *flags, "-t", tag, context], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            built.append(tag)

        load = Load()
        try:
            build(f"bench-{name}:seed")  # the cache entries the rebuilds reuse
            first, again = [], []
            for i in range(runs):
                pair = ((lambda: build(f"bench-{name}:n{i}", "--no-cache"), first), (lambda: build(f"bench-{name}:c{i}"), again))
                for fn, samples in pair if i % 2 == 0 else reversed(pair):
                    samples.append(once(fn))
        finally:
            for tag in reversed(built):
                subprocess.run([self.klee, "image", "rm", tag], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            shutil.rmtree(context, ignore_errors=True)
        ratio = statistics.median(again) / statistics.median(first)
        print(f"\n`klee build` of {what}, {runs} of each")
        print(f"  without the cache       {describe(first)}")
        print(f"  rebuilt from the cache  {describe(again)}")
        print(f"  ratio                   {ratio:.3f}   (cpu pressure {load})")
        self.report.add(f"rebuild with nothing changed ({name} steps), against a build without the cache", ms(statistics.median(again)), "", "",
                        f"{ratio:.3f}x ({ms(statistics.median(first))} without)", "<= 0.10", verdict(ratio <= 0.10), load)

    def scale(self):
        client, klee, n = self.client, self.klee, self.args.scale_containers
        keep = datasets_under(self.containers_parent)
        lsc = lambda: subprocess.run([klee, "lsc", "-a"], check=True, stdout=subprocess.DEVNULL)
        load = Load()
        self.wait_for_reaper(keep)
        idle = rss_kb(self.pid)
        lsc_few = timed(lsc, 10)
        api_list = lambda: client.get("/containers/list?all=true").raise_for_status()
        api_few = timed(api_list, 10)
        snapshot = self.image_dataset + "@image"
        clone = f"{self.containers_parent}/bench-scale-clone"

        def bare_clones():
            """A bare `zfs clone` of the image snapshot, then its destroy, 10 times: what zfs-fuse
            alone costs a create at this number of datasets."""
            samples = []
            for _ in range(10):
                samples.append(once(lambda: subprocess.run(["zfs", "clone", snapshot, clone], check=True)))
                destroy_patiently(clone)
            return samples
        clones_few = bare_clones()
        made, creates = [], []
        print(f"\nwith {n} stopped containers (created through the API one after the other)")
        try:
            for _ in range(n):
                start = time.perf_counter()
                made.append(create(client))
                creates.append((time.perf_counter() - start) * 1000)
            loaded = rss_kb(self.pid)
            lsc_many = timed(lsc, 10)
            api_many = timed(api_list, 10)
            clones_many = bare_clones()
            listed = len(client.get("/containers/list?all=true").json())
            assert listed >= n, f"{listed} containers listed, not {n}"
        finally:
            start = time.perf_counter()
            for cid in made:
                client.delete(f"/containers/{cid}")
            removed = time.perf_counter() - start
            reaped = self.wait_for_reaper(keep)
        after = rss_kb(self.pid)
        early, late = creates[5:15], creates[-10:]
        create_ratio = statistics.median(late) / statistics.median(early)
        lsc_ratio = statistics.median(lsc_many) / statistics.median(lsc_few)
        print(f"  klee lsc -a, none            {describe(lsc_few)}")
        print(f"  klee lsc -a, {n}           {describe(lsc_many)}   x{lsc_ratio:.2f} of none")
        print(f"  create, containers 6-15      {describe(early)}")
        print(f"  create, containers {n - 9}-{n}  {describe(late)}   x{create_ratio:.2f} of the 10th")
        clone_ratio = statistics.median(clones_many) / statistics.median(clones_few)
        api_ratio = statistics.median(api_many) / statistics.median(api_few)
        print(f"  bare zfs clone, none         {describe(clones_few)}")
        print(f"  bare zfs clone, {n}        {describe(clones_many)}   x{clone_ratio:.2f} of none")
        print(f"  GET /containers/list, none   {describe(api_few)}")
        print(f"  GET /containers/list, {n}  {describe(api_many)}   x{api_ratio:.2f} of none")
        print(f"  all {n} creates              {sum(creates) / 1000:.1f} s; removal {removed:.1f} s, then the reaper {reaped:.1f} s")
        print(f"  daemon VmRSS idle {idle / 1024:.1f} MiB, with {n} stopped {loaded / 1024:.1f} MiB "
              f"(x{loaded / idle:.2f}, {loaded * 1024 / 1e6:.1f} MB), after their removal {after / 1024:.1f} MiB   (cpu pressure {load})")
        self.report.add(f"`klee lsc -a` with {n} stopped containers", *map(ms, spread(lsc_many)),
                        f"{lsc_ratio:.2f}x with none ({ms(statistics.median(lsc_few))})", "flat", load=load)
        self.report.add(f"create of the {n}th container", *map(ms, spread(late)),
                        f"{create_ratio:.2f}x the 10th ({ms(statistics.median(early))})", "flat", load=load)
        self.report.add(f"bare `zfs clone` with {n} datasets", *map(ms, spread(clones_many)),
                        f"{clone_ratio:.2f}x with none ({ms(statistics.median(clones_few))})", load=load)
        self.report.add(f"`GET /containers/list?all=true` with {n}", *map(ms, spread(api_many)),
                        f"{api_ratio:.2f}x with none ({ms(statistics.median(api_few))})", load=load)
        self.report.add(f"daemon VmRSS with {n} stopped containers", f"{loaded / 1024:.1f} MiB ({loaded * 1024 / 1e6:.1f} MB)", "", "",
                        f"{loaded / idle:.2f}x idle ({idle / 1024:.1f} MiB)", "≤ 15 MB", verdict(loaded * 1024 <= 15e6), load)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="samples per figure of the run and vnet sections")
    parser.add_argument("--stream-runs", type=int, default=3, help="runs of each writer in the stream section")
    parser.add_argument("--concurrent-rounds", type=int, default=3, help="batches of each kind in the concurrent section")
    parser.add_argument("--scale-containers", type=int, default=1000, help="stopped containers in the scale section")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections, of {','.join(SECTIONS)}")
    parser.add_argument("--klee", default="target/release/klee")
    parser.add_argument("--kleened", default="target/release/kleened", help="the daemon the logs section starts a second time")
    parser.add_argument("--pidfile", default="/var/lib/kleene-quickstart/kleened.pid")
    parser.add_argument("--podman-image", default="kleene-busybox")
    parser.add_argument("--podman-args", default=None, help="extra `podman run` flags (default: none, else runc with lower rlimits)")
    args = parser.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {','.join(unknown)}: choose from {','.join(SECTIONS)}")

    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forwarding = f.read()
    bench = Bench(args)
    try:
        for section in SECTIONS:
            if section in chosen:
                getattr(bench, section)()
    finally:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read() != forwarding:
                print(f"\nnet.ipv4.ip_forward changed during the run; set back to {forwarding.strip()}")
                with open("/proc/sys/net/ipv4/ip_forward", "w") as w:
                    w.write(forwarding)
    bench.report.print()


if __name__ == "__main__":
    main()
