#!/usr/bin/env bash
# govulncheck without network access to vuln.go.dev: the Go vulnerability
# database comes as the golang.org/x/vulndb module from the Go module proxy,
# is indexed locally with its own indexdb command, and govulncheck reads it
# with -db file://. Fails on a vulnerability our code reaches in a
# third-party module; vulnerabilities of the Go standard library are fixed
# by the toolchain, not by this repository: they are reported as warnings
# (build releases with the Go version govulncheck names).
set -euo pipefail
cd "$(dirname "$0")/.."
VULNDB=golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018
GOVULNCHECK=golang.org/x/vuln/cmd/govulncheck@v1.9.0
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
dir=$(go mod download -json "$VULNDB" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
GOFLAGS=-mod=mod go run "golang.org/x/vulndb/cmd/indexdb@${VULNDB#*@}" -vulns "$dir/data/osv" -out "$out/db"
go run "$GOVULNCHECK" -db "file://$out/db" -format json ./... > "$out/report.json" || true
python3 - "$out/report.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
dec, i, osv, called = json.JSONDecoder(), 0, {}, {}
while i < len(text):
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    obj, i = dec.raw_decode(text, i)
    if "osv" in obj:
        osv[obj["osv"]["id"]] = obj["osv"].get("summary", "")
    f = obj.get("finding")
    if f and f.get("trace") and f["trace"][0].get("function"):
        called[f["osv"]] = (f["trace"][0].get("module", ""), f.get("fixed_version", ""))
stdlib = {k: v for k, v in called.items() if v[0] == "stdlib"}
mods = {k: v for k, v in called.items() if v[0] != "stdlib"}
for k, (m, fix) in sorted(stdlib.items()):
    print(f"warning: {k} in the Go standard library ({osv.get(k, '')}); fixed in Go {fix}")
for k, (m, fix) in sorted(mods.items()):
    print(f"VULNERABLE: {k} in {m} ({osv.get(k, '')}); fixed in {fix}")
print(f"govulncheck: {len(mods)} reachable vulnerabilities in modules, {len(stdlib)} in the standard library")
sys.exit(1 if mods else 0)
PY
