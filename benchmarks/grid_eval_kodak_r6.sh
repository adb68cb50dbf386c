#!/bin/sh
# Issue 13, sixth round: the latent grid with the `arm` context network (format 2.7) on Kodak
# images at the four --bpp rates of the record, default preset, next to JPEG, WebP and AVIF.
# The anchors' rows come from the fourth-round record (benchmarks/results/grid/kodak-r4: same
# images, same codecs and settings); only the grid is encoded. IMAGES picks the subset (default
# kodim01-04: 16 grid encodes, about 70 minutes alone on 2 cores). Resumable (rerun to continue).
# The fourth round's grid rows for the same images are reported alongside in "$OUT-r4".
set -e
R=benchmarks/results/grid
OUT=${OUT:-$R/kodak-r6}
K=../shared/data/kodak
IMAGES=${IMAGES:-"01 02 03 04"}
FILES=""
PATTERN=""
for i in $IMAGES; do FILES="$FILES $K/kodim$i.png"; PATTERN="$PATTERN|kodim$i.png"; done
PATTERN="(${PATTERN#|})"
mkdir -p "$OUT" "$OUT-r4"
if [ ! -f "$OUT/results.csv" ]; then      # the anchors of these images, without any grid row
    head -1 $R/kodak-r4/results.csv > "$OUT/results.csv"
    grep -E "$PATTERN" $R/kodak-r4/results.csv | grep -v ',nfc-grid,' >> "$OUT/results.csv"
fi
if [ ! -f "$OUT-r4/results.csv" ]; then   # the fourth round's record of these images (report only)
    head -1 $R/kodak-r4/results.csv > "$OUT-r4/results.csv"
    grep -E "$PATTERN" $R/kodak-r4/results.csv >> "$OUT-r4/results.csv"
fi
for s in bpp=0.25 bpp=0.5 bpp=1.0 bpp=1.5; do
    nfc eval $FILES -c nfc-grid -s "nfc-grid:$s" -c jpeg -c webp -c avif -o "$OUT" -q
done
nfc eval $FILES -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0/bpp=1.5" -c jpeg -c webp -c avif -o "$OUT" -q
nfc eval $FILES -c nfc-grid -s "nfc-grid:bpp=0.25/bpp=0.5/bpp=1.0/bpp=1.5" -c jpeg -c webp -c avif -o "$OUT-r4" -q
