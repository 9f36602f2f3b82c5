#!/usr/bin/env python3
# pprof-classes.py BINARY PROFILE: where a CPU profile's time goes, by class.
#
# Each sample of `go tool pprof -traces BINARY PROFILE` is assigned to the
# first class below (in this order) with a function on the sample's stack,
# so that, e.g., the write syscall made by our writer counts as the syscall
# and not as the writer. With PER=<µs per delivery of the run> each class is
# also given in µs per delivery (BENCHMARKS.md, "Where a delivery's
# microseconds go"). A measurement aid for roomcast, its build without
# r3labs (without-r3labs.patch) and the reference; not part of any build.
import subprocess, sys, re, collections
if len(sys.argv) != 3:
    sys.exit("usage: [PER=µs] pprof-classes.py BINARY PROFILE")
binp, prof = sys.argv[1], sys.argv[2]
out = subprocess.run(["go","tool","pprof","-traces",binp,prof],capture_output=True,text=True).stdout
H=lambda *xs: (lambda st: any(x in f for f in st for x in xs))
rules = [
 ("syscall write", H("syscall.write")),
 ("GC (background + assists)", H("gcBgMarkWorker","gcAssistAlloc","bgsweep","bgscavenge","runtime.GC")),
 ("net/http response write path (chunkWriter, bufio, poll, deadlines)", H("net/http.(*chunkWriter)","net/http.(*response).write","bufio.(*Writer)","internal/poll.","net.(*conn).Write","FlushError","SetWriteDeadline","net/http.checkConnErrorWriter")),
 ("r3labs ServeHTTP: fmt", lambda st: H("fmt.F")(st) and H("sse/v2.(*Server).ServeHTTP")(st)),
 ("our writer (deadlineWriter, excl. net/http)", H("sse.(*deadlineWriter)")),
 ("ref: writer loop (select, chan)", H("ref.(*Server).subscribe")),
 ("ref: publish + inline fan-out (enqueue, wake)", H("ref.(*Server).publish")),
 ("nor3: the experiment's loop (select, chan, formatting)", H("sse.(*stream).loop")),
 ("r3labs stream goroutine (Stream.run)", H("sse/v2.(*Stream).run")),
 ("r3labs TryPublish (lock, map, chan send, wake)", H("sse/v2.(*Server).TryPublish")),
 ("r3labs ServeHTTP: rest (chan recv, loop)", H("sse/v2.(*Server).ServeHTTP")),
 ("hub apply + sse Send (ours; nor3: + its chan send)", H("hub.(*Namespace).apply")),
 ("engine live consumer (nats client, decode)", H("engine.(*Engine).Follow","nats%2ego.(*Conn)","nats.go/")),
 ("publish HTTP handler (api, hub.Publish, engine publish)", H("api.(*nsAPI).publish","api.(*nsAPI).send")),
 ("net/http other (request parse, conn serve)", H("net/http.")),
 ("nats-server (JetStream store, routing)", H("nats-server")),
 ("scheduler (findRunnable, futex, netpoll)", H("runtime.schedule","runtime.findRunnable","runtime.mcall","runtime.park_m","netpoll","runtime.futex","runtime.usleep","runtime.sysmon")),
]
tot=0; c=collections.Counter()
blocks = out.split("-----------+-------------------------------------------------------")
for b in blocks:
    lines=[l for l in b.strip().split("\n") if l.strip()]
    if not lines: continue
    m=re.match(r"\s*([\d.]+)(ms|s)\s+(.*)",lines[0])
    if not m: continue
    v=float(m.group(1))*(1 if m.group(2)=="ms" else 1000)
    frames=[m.group(3).strip()]+[l.strip() for l in lines[1:]]
    tot+=v
    for name,f in rules:
        if f(frames): c[name]+=v; break
    else: c["other"]+=v
import os
per=float(os.environ.get("PER","0"))
for k,v in c.most_common():
    extra = f"  {per*v/tot:5.2f} µs/delivery" if per else ""
    print(f"{100*v/tot:5.1f}%  {v/1000:6.2f}s{extra}  {k}")
print(f"total {tot/1000:.2f}s")
