#!/usr/bin/env bash
# Sets up .venv and edits a sample photo: with the real weights when they are in models/clipinverter,
# otherwise with stand-in RANDOM weights (and it says so, and how to get the real ones).
source "$(dirname "$0")/env.sh" -r requirements-dev.txt
TEXT="${1:-this person has blonde hair and a beard}"
DIR=models/clipinverter
MODEL="$DIR/clipinverter_faces.safetensors"
mkdir -p out
if [ ! -f "$MODEL" ] && [ -f "$DIR/pretrained_faces.pt" ] && [ -f "$DIR/e4e_ffhq_encode.pt" ] && [ -f "$DIR/ViT-B-32.pt" ]; then
  python -m clipinverter_core convert --clipinverter "$DIR/pretrained_faces.pt" --e4e "$DIR/e4e_ffhq_encode.pt" \
    --clip "$DIR/ViT-B-32.pt" -o "$MODEL"
fi
if [ ! -f "$MODEL" ]; then
  cat >&2 <<MSG

######################################################################################################
#  NO REAL WEIGHTS in $DIR: this demo runs on STAND-IN RANDOM WEIGHTS; the output is noise, not a face.
#  Put pretrained_faces.pt, e4e_ffhq_encode.pt and ViT-B-32.pt in $DIR and run this again
#  (they are converted for you); where to get them: python -m clipinverter_core convert --help
######################################################################################################

MSG
  MODEL=out/standin_256.safetensors
  [ -f "$MODEL" ] || python -m clipinverter_core standin -o "$MODEL" --size 256
fi
python scripts/sample_photo.py out/sample_photo.png
python -m clipinverter_core align --input out/sample_photo.png -o out/aligned_face.png
python -m clipinverter_core edit --model "$MODEL" --input out/sample_photo.png --text "$TEXT" -o out/edited.png \
  --paste-back
echo "input: out/sample_photo.png   aligned: out/aligned_face.png   edit: \"$TEXT\"   output: out/edited.png"
