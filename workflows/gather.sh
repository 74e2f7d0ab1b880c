#!/bin/sh
# gather.sh: concatenate the `nof1 assess` outputs of shards made by split.sh.
#
# The first output's header line is kept and the header of every other one is
# dropped (it must be the same line), so that the result is byte for byte the
# output of one `nof1 assess` run on the whole file. See workflows/README.md.

set -u

prog=gather.sh

usage() {
    cat <<'EOF'
Usage: gather.sh [-o OUT] [-H] SHARD_OUTPUT...

Concatenate the `nof1 assess` outputs of the shards, in the order given, and
keep only the first header line. Give the outputs in shard order, e.g. the
glob assessed/shard-*.csv (split.sh zero-pads the indices so that the lexical
order of the names is the shard order), never in the order jobs finished.

  -o OUT   write to OUT (atomically: a temporary file renamed at the end)
           instead of standard output; - means standard output
  -H       the outputs have no header line (JSON Lines, --format jsonl):
           concatenate them as they are
  -h       show this help

With headers, every output must start with the same header line (an empty
output, or one with a different header, e.g. from another model or format,
is an error). A missing final newline is added.

Exit status: 0 on success, 2 on bad arguments, 1 on any other error.
EOF
}

die_usage() {
    printf '%s: %s\n' "$prog" "$1" >&2
    printf "Try '%s -h' for help.\n" "$prog" >&2
    exit 2
}

die() {
    printf '%s: error: %s\n' "$prog" "$1" >&2
    exit 1
}

out=-
headers=1
while getopts ':o:Hh' opt; do
    case $opt in
        o) out=$OPTARG ;;
        H) headers=0 ;;
        h) usage; exit 0 ;;
        :) die_usage "option -$OPTARG needs a value" ;;
        *) die_usage "unknown option -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || die_usage "expected at least one SHARD_OUTPUT"
[ -n "$out" ] || die_usage "-o needs a file name or -"

LC_ALL=C
export LC_ALL

for f in "$@"; do
    [ -e "$f" ] || die "$f: no such file"
    [ -d "$f" ] && die "$f: is a directory, not a file"
    [ -r "$f" ] || die "$f: not readable"
    # shellcheck disable=SC3013 # -ef: in dash, bash, busybox and BSD sh
    if [ "$out" != - ] && [ "$f" -ef "$out" ]; then
        die "$f: is also the output -o $out"
    fi
    if [ "$headers" -eq 1 ] && [ ! -s "$f" ]; then
        die "$f: empty: nof1 assess always writes a header line (did the job fail?)"
    fi
done

# Check every header before writing anything.
if [ "$headers" -eq 1 ]; then
    first=$1
    header=$(head -n 1 -- "$first") || die "$first: cannot read"
    for f in "$@"; do
        h=$(head -n 1 -- "$f") || die "$f: cannot read"
        [ "$h" = "$header" ] || die "$f: its header line differs from the one of $first (another model, format or delimiter?)"
    done
fi

tmp=
# shellcheck disable=SC2317 # called from the traps
cleanup() {
    if [ -n "$tmp" ]; then rm -f -- "$tmp"; fi
    return 0
}
trap cleanup EXIT
trap 'cleanup; exit 1' HUP INT TERM

if [ "$out" != - ]; then
    outdir=$(dirname -- "$out")
    [ -d "$outdir" ] || die "$outdir: no such directory (for -o $out)"
    tmp=$(mktemp "$outdir/.gather.XXXXXX") || die "cannot create a temporary file in $outdir"
fi

# A file name that looks like an assignment (a=b) would be taken as one by
# awk: pass every name as a path with a slash.
n=$#
i=0
while [ "$i" -lt "$n" ]; do
    f=$1
    shift
    case $f in
        /* | ./* | ../*) ;;
        *) f=./$f ;;
    esac
    set -- "$@" "$f"
    i=$((i + 1))
done

concatenate() {
    awk -v headers="$headers" '
        FNR == 1 && NR > 1 && headers == 1 { next }
        { print }
    ' "$@"
}

if [ -z "$tmp" ]; then
    concatenate "$@" || die "concatenation failed"
else
    concatenate "$@" >"$tmp" || die "concatenation failed"
    # mktemp makes the file private; give it the mode a new file would get.
    chmod "$(printf '%o' $((0666 & ~$(umask))))" "$tmp" || die "cannot set the mode of $out"
    mv -f -- "$tmp" "$out" || die "cannot write $out"
    tmp=
fi
exit 0
