"""One end-to-end run of bertstream or the Python peer on real reviews.

    python bench/e2e/e2e.py --system bertstream|peer --model DIR --data FILE.jsonl \
        --n 3000 [--paced-seconds 15 [--rate R | --rate-fraction 0.5]] [--threads T]
        [--label NAME] [--json OUT.jsonl] [--env NAME=VALUE ...] [--perf perf.data]
        [--swap-to DIR] [--backfill-model DIR --backfill-rate R]

BERTSTREAM_WORKER=path picks the worker binary (default: target/release's).

Per run: fresh topics (4 partitions), a fresh consumer group, a fresh
database (CREATE DATABASE through TEST_DATABASE_URL's server). The system
starts on the empty topic; 32 warm-up reviews go through first (so the group
has joined and the model has run once). Then two phases:

1. backlog (throughput): N reviews are published at once; reviews/s = N / (time
   from the first publish to the last result on the output topic).
   The model's own time on those batches comes from the rows (model_ms and
   batch_size per batch, the same columns for both systems): model-only
   reviews/s = N / sum(model time), and pipeline efficiency = e2e / model-only.
2. paced (latency): R/s for --paced-seconds (at least 8 reviews), R below both systems' capacity;
   end-to-end latency = output record timestamp - input record timestamp (both
   Kafka CreateTime, so both after the result is in Postgres); p50/p99.

The model lifecycle (bench/models.sh, bertstream only): --swap-to DIR swaps
the primary to DIR (POST /v1/admin/models/primary) once a third of the
backlog is out, and reports the longest gap between consecutive batches
around the swap against the backlog's median gap (`swap_stall_batches`);
--backfill-model DIR runs `bertstream-worker backfill` over the backlog
already scored, at --backfill-rate reviews/s, during the paced phase, whose
latency then shows what the backfill costs the live stream.

Prints one JSON object (and appends it to --json).
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
WARMUP = 32
PARTITIONS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_db(url: str, name: str) -> str:
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(u._replace(path="/" + name))


class OutputReader(threading.Thread):
    """Reads the output topic from the start: key -> record timestamp (ms)."""

    def __init__(self, brokers: str, topic: str):
        super().__init__(daemon=True)
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stop = False
        self.consumer = Consumer({"bootstrap.servers": brokers, "group.id": "bench-reader-" + uuid.uuid4().hex[:8],
                                  "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])

    def run(self):
        while not self.stop:
            for m in self.consumer.consume(500, 0.1):
                if m.error() is None:
                    with self.lock:
                        self.seen.setdefault(m.key().decode(), m.timestamp()[1])
        self.consumer.close()

    def wait(self, keys, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if all(k in self.seen for k in keys):
                    return [self.seen[k] for k in keys]
            time.sleep(0.05)
        with self.lock:
            missing = sum(k not in self.seen for k in keys)
        raise TimeoutError(f"{missing} of {len(keys)} results missing after {timeout}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def swap(port: int, token: str, model_dir: str) -> None:
    import urllib.request
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/admin/models/primary", method="POST",
                                     data=json.dumps({"dir": str(Path(model_dir).resolve())}).encode(),
                                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        json.load(reply)


def swap_stall(db_url: str, keys) -> dict:
    """The longest gap between consecutive batches where the model changes,
    in median gaps of the backlog phase (1.0: the swap cost no batch time)."""
    with psycopg.connect(db_url) as c:
        batches = c.execute("SELECT DISTINCT classified_at, model FROM classifications WHERE review_id = ANY(%s)"
                            " ORDER BY classified_at", (keys,)).fetchall()
    gaps = [(b[0] - a[0]).total_seconds() for a, b in zip(batches, batches[1:])]
    at_swap = [g for (a, b), g in zip(zip(batches, batches[1:]), gaps) if a[1] != b[1]]
    median = statistics.median(gaps)
    return {"median_gap_ms": round(median * 1000, 1), "swap_gap_ms": round(max(at_swap) * 1000, 1),
            "swap_stall_batches": round(max(at_swap) / median, 2)}


def backfilled(db_url: str) -> int:
    with psycopg.connect(db_url) as c:
        return c.execute("SELECT count(*) FROM predictions WHERE role = 'backfill'").fetchone()[0]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--system", choices=["bertstream", "peer"], required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--paced-seconds", type=float, default=0, help="length of the latency phase (0: none)")
    p.add_argument("--rate", type=float, default=0, help="reviews/s in the latency phase")
    p.add_argument("--rate-fraction", type=float, default=0.5,
                   help="without --rate: this fraction of the backlog phase's reviews/s")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--label", default="")
    p.add_argument("--json")
    p.add_argument("--perf", help="record a perf profile of the system during the backlog phase into this file")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the system under test")
    p.add_argument("--swap-to", help="bertstream: hot swap to this model a third of the way through the backlog")
    p.add_argument("--backfill-model", help="bertstream: backfill the backlog with this model during the paced phase")
    p.add_argument("--backfill-rate", type=int, default=50)
    a = p.parse_args()

    reviews = [json.loads(l) for l in open(a.data, encoding="utf-8")]
    warm, backlog, rest = reviews[:WARMUP], reviews[WARMUP:WARMUP + a.n], reviews[WARMUP + a.n:]

    brokers = os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")
    suffix = uuid.uuid4().hex[:10]
    topics = {"in": f"bench-in-{suffix}", "out": f"bench-out-{suffix}", "dlq": f"bench-dlq-{suffix}"}
    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics.values()]).values():
        f.result()
    dbname = f"bench_{suffix}"
    admin_url = os.environ["TEST_DATABASE_URL"]
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{dbname}"')
    db_url = with_db(admin_url, dbname)

    port = free_port()
    env = dict(os.environ, KAFKA_BROKERS=brokers, INPUT_TOPIC=topics["in"], OUTPUT_TOPIC=topics["out"],
               DLQ_TOPIC=topics["dlq"], GROUP_ID=f"bench-{suffix}", DATABASE_URL=db_url, MODEL_DIR=a.model,
               DEVICE="cpu", TORCH_THREADS=str(a.threads), HTTP_ADDR=f"127.0.0.1:{port}",
               TOPIC_PARTITIONS=str(PARTITIONS), RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    env.update(kv.split("=", 1) for kv in a.env)
    admin_token = uuid.uuid4().hex
    env["ADMIN_TOKENS"] = admin_token
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    worker = os.environ.get("BERTSTREAM_WORKER", str(target / "release" / "bertstream-worker"))
    cmd = ([worker, "run"] if a.system == "bertstream"
           else [sys.executable, str(ROOT / "bench" / "peer" / "peer.py")])
    log = open(Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / f"bench-{a.system}-{suffix}.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    reader = OutputReader(brokers, topics["out"])
    reader.start()
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "enable.idempotence": True})

    def publish(batch):
        for r in batch:
            producer.produce(topics["in"], key=r["id"], value=json.dumps(r, ensure_ascii=False).encode())
            producer.poll(0)

    result = {"system": a.system, "label": a.label, "model": Path(a.model).name, "threads": a.threads}
    try:
        publish(warm)
        producer.flush()
        started = time.time()
        reader.wait([r["id"] for r in warm], a.timeout)
        result["startup_s"] = round(time.time() - started, 2)

        # 1. backlog: throughput
        perf = (subprocess.Popen(["perf", "record", "-q", "-F", "299", "-g", "-p", str(proc.pid), "-o", a.perf],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if a.perf else None)
        t0, cpu0 = time.time(), cpu_seconds(proc.pid)
        publish(backlog)
        producer.flush()
        if a.swap_to:
            reader.wait([r["id"] for r in backlog[:len(backlog) // 3]], a.timeout)
            swap_started = time.time()
            swap(port, admin_token, a.swap_to)
            result["swap_s"] = round(time.time() - swap_started, 3)
        out = reader.wait([r["id"] for r in backlog], a.timeout)
        wall = max(out) / 1000 - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        result["n"] = a.n
        result["reviews_per_s"] = round(a.n / wall, 1)
        result["backlog_wall_s"] = round(wall, 2)
        # CPU time is less sensitive than wall time to other work on a shared machine
        result["cpu_s"] = round(cpu, 2)
        result["reviews_per_cpu_s"] = round(a.n / cpu, 1)
        with psycopg.connect(db_url) as c:
            batches = c.execute(
                "SELECT count(*), sum(model_ms), sum(batch_size) FROM (SELECT DISTINCT classified_at, model_ms, batch_size"
                " FROM classifications WHERE review_id = ANY(%s)) b", ([r["id"] for r in backlog],)).fetchone()
        model_s = float(batches[1]) / 1000
        result["batches"] = batches[0]
        result["mean_batch"] = round(float(batches[2]) / batches[0], 1)
        result["model_s"] = round(model_s, 2)
        result["model_reviews_per_s"] = round(a.n / model_s, 1)
        result["efficiency"] = round(model_s / wall, 3)
        if a.swap_to:
            result.update(swap_stall(db_url, [r["id"] for r in backlog]))

        # 2. paced: latency
        rate = a.rate or round(result["reviews_per_s"] * a.rate_fraction, 2)
        paced = rest[:max(8, int(rate * a.paced_seconds))] if a.paced_seconds else []
        need = WARMUP + a.n + len(paced)
        if len(paced) < 8 and a.paced_seconds:
            raise SystemExit(f"{a.data}: too few reviews for the paced phase")
        if paced:
            keys = [r["id"] for r in paced]
            backfill = (subprocess.Popen(
                [worker, "backfill", "--model", a.backfill_model, "--rate", str(int(a.backfill_rate)),
                 "--job", "bench-" + suffix],
                env=env, stdout=log, stderr=subprocess.STDOUT) if a.backfill_model else None)
            start = time.time()
            for i, r in enumerate(paced):
                delay = start + i / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                publish([r])
            producer.flush()
            out = reader.wait(keys, a.timeout)
            if backfill:
                result["backfilled_during_paced"] = backfilled(db_url)
                backfill.terminate()
                backfill.wait(30)
            consumer = Consumer({"bootstrap.servers": brokers, "group.id": "bench-in-" + suffix, "enable.auto.commit": False})
            consumer.assign([TopicPartition(topics["in"], p, 0) for p in range(PARTITIONS)])
            published = {}
            deadline = time.time() + 30
            while len(published) < need and time.time() < deadline:
                for m in consumer.consume(1000, 0.2):
                    if m.error() is None:
                        published[m.key().decode()] = m.timestamp()[1]
            consumer.close()
            lat = [o - published[k] for k, o in zip(keys, out)]
            result.update(rate=rate, paced=len(paced), p50_ms=pct(lat, 50), p99_ms=pct(lat, 99),
                          mean_ms=round(statistics.mean(lat), 1))
        with psycopg.connect(db_url) as c:
            result["rows"] = c.execute("SELECT count(*) FROM classifications").fetchone()[0]
        if result["rows"] != need:
            result["warning"] = f"{result['rows']} rows, {need} expected"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.stop = True
        reader.join(5)
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.delete_topics(list(topics.values()))
    line = json.dumps(result)
    print(line, flush=True)
    if a.json:
        with open(a.json, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
