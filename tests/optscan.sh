#!/usr/bin/env bash
#
# optscan: every directive in conf.c's table must be documented.
#
# The names come from the CONF_DIRECTIVES table in src/conf.c (one
# `D("name", ...` entry per line). A name counts as documented in the sample
# config when a line holds it as a directive, active or commented out
# ("maxclients 10000" or "# maxclients 10000"), and in a doc file when it
# appears in backquotes (`maxclients` or `pool NAME`).
#
# Run by `make check` with RZ_SRCDIR set to the source tree; by hand:
#   RZ_SRCDIR=. tests/optscan.sh
set -euo pipefail

srcdir=${RZ_SRCDIR:-.}

# Files, relative to the source tree, that must mention every directive.
SAMPLE_CONFS=(conf/rzproxy.conf)
DOC_FILES=(README.md)
MAN_FILES=(man/rzproxy.8.in)

table=$srcdir/src/conf.c
if [[ ! -r $table ]]; then
    echo "optscan: cannot read $table (set RZ_SRCDIR)" >&2
    exit 1
fi

mapfile -t names < <(sed -n 's/^[[:space:]]*D("\([^"]*\)".*/\1/p' "$table")
if (( ${#names[@]} == 0 )); then
    echo "optscan: no directives found in $table; has the table format changed?" >&2
    exit 1
fi

missing=0
for f in "${SAMPLE_CONFS[@]}" "${DOC_FILES[@]}" "${MAN_FILES[@]}"; do
    if [[ ! -r $srcdir/$f ]]; then
        echo "optscan: cannot read $srcdir/$f" >&2
        missing=1
    fi
done
(( missing == 0 )) || exit 1

for name in "${names[@]}"; do
    # grep -E pattern for the name; directive names contain only [a-z0-9-]
    for f in "${SAMPLE_CONFS[@]}"; do
        if ! grep -Eiq "^[[:space:]]*(#[[:space:]]*)?${name}([[:space:]]|\$)" "$srcdir/$f"; then
            echo "optscan: '$name' is not documented in $f"
            missing=1
        fi
    done
    for f in "${DOC_FILES[@]}"; do
        if ! grep -Eq "\`${name}[\` ]" "$srcdir/$f"; then
            echo "optscan: '$name' is not documented in $f"
            missing=1
        fi
    done
    # a man page item: .TP, then a line starting \fBname\fR
    for f in "${MAN_FILES[@]}"; do
        if ! grep -Eq "^\\\\fB${name}\\\\fR" "$srcdir/$f"; then
            echo "optscan: '$name' is not documented in $f"
            missing=1
        fi
    done
done

if (( missing )); then
    echo "optscan: document the directives above (see src/conf.c for default and range)"
    exit 1
fi
echo "optscan: ${#names[@]} directives documented"
