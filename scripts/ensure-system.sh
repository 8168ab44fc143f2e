#!/usr/bin/env bash
# Install the system programs consent-replay needs, when missing: ffmpeg; tesseract with its
# Norwegian and English data (OCR for redaction suggestions); the DejaVu fonts (the media tests
# render text). With --browser, Chromium for the browser tests; with --hsm, SoftHSM2 for the
# PKCS#11 tests.
# Uses apt-get when run as root; otherwise says what to install.
set -euo pipefail

need=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
if command -v tesseract >/dev/null 2>&1; then
  langs="$(tesseract --list-langs 2>/dev/null || true)"
  grep -qx nor <<<"$langs" || need+=(tesseract-ocr-nor)
  grep -qx eng <<<"$langs" || need+=(tesseract-ocr-eng)
else
  need+=(tesseract-ocr tesseract-ocr-nor tesseract-ocr-eng)
fi
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
for arg in "$@"; do
  case "$arg" in
    --browser) command -v chromium >/dev/null 2>&1 || need+=(chromium) ;;
    --hsm) command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2) ;;
    --age) command -v age >/dev/null 2>&1 || need+=(age) ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} with apt-get ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
else
  echo "consent-replay needs: ${need[*]}" >&2
  echo "install them, e.g.: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
