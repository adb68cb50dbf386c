#!/bin/sh
# Join several `nfc eval` records of Kodak images at the grid's four --bpp rates into one folder
# and recompute the BD-rates over all their files (nfc eval is resumable: it encodes nothing here,
# every row is already in the joined results.csv). Issue 13, seventh round:
#   OUT=benchmarks/results/grid/kodak-r6-all sh benchmarks/grid_join_kodak.sh \
#       benchmarks/results/grid/kodak-r6 benchmarks/results/grid/kodak-r6b benchmarks/results/grid/kodak-r6c
# (and with the "-r4" folders into kodak-r6-all-r4 for the fourth round's grid rows of the same images).
set -e
OUT=${OUT:?set OUT to the joined folder}
K=../shared/data/kodak
mkdir -p "$OUT"
first=1
for d in "$@"; do
    if [ $first = 1 ]; then cat "$d/results.csv" > "$OUT/results.csv"; first=0
    else tail -n +2 "$d/results.csv" >> "$OUT/results.csv"; fi
done
FILES=$(tail -n +2 "$OUT/results.csv" | cut -d, -f1 | sort -u | tr '\n' ' ')
nfc eval $FILES -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0/bpp=1.5" -c jpeg -c webp -c avif -o "$OUT" -q
