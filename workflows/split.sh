#!/bin/sh
# split.sh: split a CSV/TSV patient file into shards for `nof1 assess`.
#
# Every shard repeats the header line and holds a contiguous run of rows, in
# input order, so that assessing the shards and concatenating the outputs
# with gather.sh gives the same bytes as one `nof1 assess` run on the whole
# file. Only coreutils and a POSIX awk are needed. See workflows/README.md.

set -u

prog=split.sh

usage() {
    cat <<'EOF'
Usage: split.sh (-n SHARDS | -l ROWS) [-o DIR] [-p PREFIX] [-x EXT] [-d DELIM] [-f] INPUT

Split a CSV/TSV patient table into shards that `nof1 assess` reads exactly as
it reads the whole file. Each shard repeats the header line and holds a
contiguous run of rows, in input order.

  -n SHARDS  exactly SHARDS shards of balanced size (sizes differ by at most
             one row, larger shards first; a shard may hold the header only
             when there are fewer rows than shards)
  -l ROWS    shards of ROWS rows each; the last one may be shorter
             (at least one shard, header-only when the file has no rows)
  -o DIR     output directory, created if missing (default: .)
  -p PREFIX  shard name prefix (default: shard)
  -x EXT     shard extension without the dot (default: the input's
             extension, or csv for standard input or a name without one)
  -d DELIM   field delimiter: one character or `tab` (default: from EXT as
             nof1 does: tsv, tab and txt mean tab, anything else comma).
             Only used to check that no quoted field spans lines
  -f         remove shards left in DIR by an earlier run with the same
             PREFIX and EXT (without -f they are an error)
  -h         show this help
  INPUT      patient file, or - for standard input

Shards are named DIR/PREFIX-IIII.EXT, with a zero-based index zero-padded to
at least 4 digits (more when there are more than 10000 shards), so that the
lexical order of the names is the shard order. Their paths are printed to
standard output, one per line, in shard order.

Line endings: LF, CRLF and bare CR all end a line, as in nof1; shards are
written with LF. Empty lines (which nof1 skips) are dropped; the header is
the first non-empty line. A missing final newline is fine. A quoted field
that spans lines is refused (nof1 refuses it too).

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

is_count() {
    case $1 in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ "$1" -gt 0 ] 2>/dev/null
}

shards=
rows=
dir=.
prefix=shard
ext=
delim=
force=0

while getopts ':n:l:o:p:x:d:fh' opt; do
    case $opt in
        n) shards=$OPTARG ;;
        l) rows=$OPTARG ;;
        o) dir=$OPTARG ;;
        p) prefix=$OPTARG ;;
        x) ext=$OPTARG ;;
        d) delim=$OPTARG ;;
        f) force=1 ;;
        h) usage; exit 0 ;;
        :) die_usage "option -$OPTARG needs a value" ;;
        *) die_usage "unknown option -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))

[ $# -eq 1 ] || die_usage "expected exactly one INPUT (a file or -), got $#"
input=$1

if [ -n "$shards" ] && [ -n "$rows" ]; then
    die_usage "-n and -l are mutually exclusive"
fi
if [ -z "$shards" ] && [ -z "$rows" ]; then
    die_usage "one of -n SHARDS or -l ROWS is required"
fi
if [ -n "$shards" ] && ! is_count "$shards"; then
    die_usage "-n needs a positive integer, got '$shards'"
fi
if [ -n "$rows" ] && ! is_count "$rows"; then
    die_usage "-l needs a positive integer, got '$rows'"
fi
case $prefix in
    '' | */*) die_usage "-p needs a non-empty prefix without '/', got '$prefix'" ;;
esac

base=${input##*/}
if [ -z "$ext" ]; then
    case $base in
        - | .* | '') ext=csv ;;
        *.*) ext=${base##*.} ;;
        *) ext=csv ;;
    esac
fi
case $ext in
    '' | */* | .*) die_usage "-x needs an extension without dot or '/', got '$ext'" ;;
esac

if [ -z "$delim" ]; then
    # As nof1 will read the shards: by their extension.
    case $(printf '%s' "$ext" | tr '[:upper:]' '[:lower:]') in
        tsv | tab | txt) delim=tab ;;
        *) delim=, ;;
    esac
fi
case $delim in
    tab | TAB | '\t') delim=tab ;;
    ?) ;;
    *) die_usage "-d needs one character or 'tab', got '$delim'" ;;
esac

LC_ALL=C
export LC_ALL

if [ "$input" != - ]; then
    [ -e "$input" ] || die "$input: no such file"
    [ -d "$input" ] && die "$input: is a directory, not a file"
    [ -r "$input" ] || die "$input: not readable"
fi

mkdir -p -- "$dir" || die "cannot create the output directory $dir"

# Shards left by an earlier run would be picked up by a glob: refuse or remove.
stale=0
for f in "$dir/$prefix"-[0-9]*."$ext"; do
    [ -e "$f" ] || continue
    case ${f#"$dir/$prefix"-} in
        *[!0-9]*."$ext" | ."$ext") continue ;;
    esac
    # shellcheck disable=SC3013 # -ef: in dash, bash, busybox and BSD sh
    if [ "$input" != - ] && [ "$f" -ef "$input" ]; then
        die "the input $input is itself named like a shard in $dir; choose another -o or -p"
    fi
    if [ "$force" -eq 1 ]; then
        rm -f -- "$f" || die "cannot remove the old shard $f"
    else
        stale=$((stale + 1))
    fi
done
[ "$stale" -eq 0 ] || die "$dir holds $stale shard(s) named $prefix-*.$ext from an earlier run; remove them or use -f"

# Standard input is read twice (count, then write): keep a copy.
tmp=
# shellcheck disable=SC2317 # called from the traps
cleanup() {
    if [ -n "$tmp" ]; then rm -f -- "$tmp"; fi
    return 0
}
trap cleanup EXIT
trap 'cleanup; exit 1' HUP INT TERM
if [ "$input" = - ]; then
    tmp=$(mktemp "$dir/.$prefix-stdin.XXXXXX") || die "cannot create a temporary file in $dir"
    cat >"$tmp" || die "cannot read standard input"
    src=$tmp
else
    src=$input
fi

# Pass 1: check quoting and count the non-empty lines (header included).
# tr turns every CR into LF: CRLF then gives an empty line, which is dropped,
# and a bare CR ends a line, as in nof1's CSV reader.
total=$(tr '\r' '\n' <"$src" | awk -v delim="$delim" '
    BEGIN { d = (delim == "tab") ? "\t" : delim; q = "\"" }
    length($0) == 0 { next }
    {
        n++
        # A line whose quoted field is still open at its end would make a
        # field span lines, which nof1 refuses; a shard border there would
        # hide it. Track quoting like the CSV reader (a quote opens a quoted
        # field only at the start of a field; "" inside one is a quote).
        if (index($0, q) > 0) {
            state = 0  # 0 start of field, 1 unquoted, 2 quoted, 3 quote in quoted
            len = length($0)
            for (i = 1; i <= len; i++) {
                c = substr($0, i, 1)
                if (state == 0) { state = (c == q) ? 2 : ((c == d) ? 0 : 1) }
                else if (state == 1) { if (c == d) state = 0 }
                else if (state == 2) { if (c == q) state = 3 }
                else { state = (c == q) ? 2 : ((c == d) ? 0 : 1) }
            }
            if (state == 2) {
                printf "split.sh: line %d (not counting empty lines): a quoted field is still open at the end of the line\n", n | "cat 1>&2"
                bad = 1
                exit
            }
        }
    }
    END { if (!bad) print n + 0; exit bad }
') || die "a quoted field spans lines (unterminated quote?); nof1 refuses such a file, fix it first"
[ -n "$total" ] || die "cannot read $input"
[ "$total" -ge 1 ] || die "$input: empty file: a header line is required"
nrows=$((total - 1))

if [ -n "$shards" ]; then
    count=$shards
else
    count=$(((nrows + rows - 1) / rows))
    [ "$count" -ge 1 ] || count=1
fi
last=$((count - 1))
width=${#last}
[ "$width" -ge 4 ] || width=4

# Pass 2: write the shards. Shard k gets rows [start_k, start_k + size_k).
# Names go through the environment: awk -v would interpret backslashes.
SPLIT_DIR=$dir SPLIT_PREFIX=$prefix SPLIT_EXT=$ext
export SPLIT_DIR SPLIT_PREFIX SPLIT_EXT
tr '\r' '\n' <"$src" | awk \
    -v count="$count" -v nrows="$nrows" -v per="${rows:-0}" -v width="$width" '
    function name(k) {
        return ENVIRON["SPLIT_DIR"] "/" ENVIRON["SPLIT_PREFIX"] "-" sprintf("%0" width "d", k) "." ENVIRON["SPLIT_EXT"]
    }
    function size(k,   q, r) {
        if (per > 0) return (k < count - 1) ? per : nrows - per * (count - 1)
        q = int(nrows / count); r = nrows - q * count
        return (k < r) ? q + 1 : q
    }
    function open_shard(k) {
        out = name(k)
        printf "%s\n", header > out
        left = size(k)
    }
    function close_shard() {
        if (close(out) != 0) { failed = 1 }
        print out
    }
    length($0) == 0 { next }
    !seen_header { header = $0; seen_header = 1; k = 0; open_shard(k); next }
    {
        while (left == 0) { close_shard(); k++; open_shard(k) }
        printf "%s\n", $0 > out
        left--
    }
    END {
        if (!seen_header) exit 1
        close_shard()
        for (k++; k < count; k++) { open_shard(k); close_shard() }
        exit failed
    }
' || die "writing the shards into $dir failed"
exit 0
