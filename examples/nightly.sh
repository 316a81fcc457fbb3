#!/usr/bin/env bash
# A nightly job: take in the new files of a music folder, keep the index fresh, and write one playlist per seed.
#
#   nightly.sh [MUSIC_DIR [SEEDS_FILE [PLAYLIST_DIR]]]
#
#   MUSIC_DIR     the music folder to scan (default: ~/Music)
#   SEEDS_FILE    one query per line: an audio file (best given as an absolute path) or a catalog track id;
#                 blank lines and # comments are skipped (default: ~/.config/musimilar/seeds.txt)
#   PLAYLIST_DIR  where like-<seed>.m3u playlists go (default: ~/Music/Playlists/musimilar)
#
# Environment:
#   MUSIMILAR_HOME   the library home (musimilar reads it itself; default: the user data directory)
#   PLAYLIST_SIZE    tracks per playlist (default: 25)
#   CONVERT_WORKERS  decoding processes for convert (default: one per core)
#   PYTHON           a Python 3 to read JSON with (default: python3)
# and any MUSIMILAR_<SECTION>_<KEY> setting, e.g. MUSIMILAR_EMBED_DEVICE=cpu.
#
# The home must hold a trained model (`musimilar train ~/Music` once). A crontab line:
#   30 3 * * *  MUSIMILAR_HOME=/srv/musimilar /opt/musimilar/examples/nightly.sh /srv/music >>/var/log/nightly.log 2>&1
#
# Exit status: 0 when all went well; 3 when some audio files or seeds failed (they are logged and the rest is done;
# `musimilar info --failed` lists the failed files); otherwise the exit code of the musimilar command that stopped
# the job (4: the home is busy, 5: no model yet).
set -euo pipefail

MUSIC_DIR=${1:-$HOME/Music}
SEEDS_FILE=${2:-${XDG_CONFIG_HOME:-$HOME/.config}/musimilar/seeds.txt}
PLAYLIST_DIR=${3:-$HOME/Music/Playlists/musimilar}
PLAYLIST_SIZE=${PLAYLIST_SIZE:-25}
PYTHON=${PYTHON:-python3}
EXIT_PARTIAL=3

log() { printf '%s nightly: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }

command -v musimilar >/dev/null || { log "musimilar is not on PATH"; exit 1; }
partial=0

# Run a musimilar command. Exit code 3 (some inputs failed: they are recorded and skipped) is logged and the job
# goes on; any other failure ends the job with that code.
step() {
    local rc=0
    musimilar "$@" || rc=$?
    case $rc in
        0) ;;
        "$EXIT_PARTIAL") partial=1; log "musimilar $1: some inputs failed and were skipped (named above)" ;;
        4) log "musimilar $1: the home is busy with another job; trying again next night"; exit 4 ;;
        5) log "musimilar $1: the home is not ready (train a model first: musimilar train $MUSIC_DIR)"; exit 5 ;;
        *) log "musimilar $1 failed with exit code $rc"; exit "$rc" ;;
    esac
}

# 1. Decode and cache new or changed files, then embed them with the current model (`musimilar embed DIR` does both
#    in one command; two steps give each its own exit code). New tracks are recommended at once: tracks embedded
#    after the index was built are searched exactly beside it.
log "taking in new files of $MUSIC_DIR"
step convert "$MUSIC_DIR" ${CONVERT_WORKERS:+--workers "$CONVERT_WORKERS"}
step embed

# 2. Rebuild the index when `info` says it does not cover the current embeddings.
index_state=$(musimilar info --format json | "$PYTHON" -c '
import json, sys
status = json.load(sys.stdin)
index = status["index"]
print("none" if index is None else "up-to-date" if index["up_to_date"] else "stale")
')
if [[ $index_state != up-to-date ]]; then
    log "index is $index_state: rebuilding it"
    step index
fi

# 3. One playlist per seed. One `recommend -` answers every seed with a single start-up; its JSON output
#    ([{query, results, error}]) is split into playlists, written to a temporary name and renamed into place.
if [[ ! -f $SEEDS_FILE ]]; then
    log "no seeds file $SEEDS_FILE: no playlists written"
    exit $((partial ? EXIT_PARTIAL : 0))
fi
mkdir -p "$PLAYLIST_DIR"
seeds=$(mktemp)
answers=$(mktemp)
trap 'rm -f "$seeds" "$answers"' EXIT
grep -v -E '^[[:space:]]*(#|$)' "$SEEDS_FILE" >"$seeds" || true
if [[ ! -s $seeds ]]; then
    log "$SEEDS_FILE lists no seeds: no playlists written"
    exit $((partial ? EXIT_PARTIAL : 0))
fi
step recommend - --k "$PLAYLIST_SIZE" --format json <"$seeds" >"$answers"
"$PYTHON" - "$answers" "$PLAYLIST_DIR" <<'PYTHON'
import json
import re
import sys
from pathlib import Path

answers = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
folder = Path(sys.argv[2])
used = set()
for answer in answers:
    if answer["error"]:
        print(f"nightly: no playlist for {answer['query']}: {answer['error']}", file=sys.stderr)
        continue
    name = "like-" + (re.sub(r"[^\w.-]+", "_", Path(answer["query"]).stem) or "seed")
    base, copy = name, 1
    while name in used:  # two seeds with the same file name
        copy += 1
        name = f"{base}-{copy}"
    used.add(name)
    lines = ["#EXTM3U"]
    for result in answer["results"]:
        lines += [f"#EXTINF:-1,{Path(result['path']).stem}", result["path"]]
    temporary = folder / f".{name}.m3u.tmp"
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(folder / f"{name}.m3u")
    print(f"nightly: {folder / (name + '.m3u')}: {len(answer['results'])} tracks", file=sys.stderr)
PYTHON

log "done"
exit $((partial ? EXIT_PARTIAL : 0))
