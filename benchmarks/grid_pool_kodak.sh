#!/bin/sh
# Issue 13: pool the three Kodak runs of the latent grid (kodim01-04, 05-08, 09-12; see
# benchmarks/grid_eval_kodak.sh) into one results file and let `nfc eval` write the Kodak 1-12
# BD-rate tables and RD plot. Every row is already measured, so nothing is re-encoded: nfc eval
# resumes from the pooled results.csv (same files, codecs and settings) and only redoes the report.
set -e
R=benchmarks/results/grid
OUT=$R/kodak-causal-all
mkdir -p "$OUT"
head -n 1 $R/kodak-causal/results.csv > "$OUT/results.csv"
for part in kodak-causal kodak-causal-5to8 kodak-causal-9to12; do
    tail -n +2 "$R/$part/results.csv" | grep -v '^$' >> "$OUT/results.csv"
done
K=../shared/data/kodak
nfc eval $K/kodim01.png $K/kodim02.png $K/kodim03.png $K/kodim04.png $K/kodim05.png $K/kodim06.png \
    $K/kodim07.png $K/kodim08.png $K/kodim09.png $K/kodim10.png $K/kodim11.png $K/kodim12.png \
    -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0/bpp=1.5" -c jpeg -c webp -c avif -o "$OUT" -q
# The same record without the --bpp 1.5 points, where two images' curves turn down (the grid
# saturates near 1 bpp on them, docs/benchmarks.md): BD over all 12 files on 0.25-1.0 bpp.
OUT3=$R/kodak-causal-all-3rates
mkdir -p "$OUT3"
grep -v ',nfc-grid,bpp=1.5,' "$OUT/results.csv" > "$OUT3/results.csv"
nfc eval $K/kodim01.png $K/kodim02.png $K/kodim03.png $K/kodim04.png $K/kodim05.png $K/kodim06.png \
    $K/kodim07.png $K/kodim08.png $K/kodim09.png $K/kodim10.png $K/kodim11.png $K/kodim12.png \
    -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0" -c jpeg -c webp -c avif -o "$OUT3" -q
