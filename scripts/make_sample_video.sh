#!/usr/bin/env bash
# How samples/quarterly-planning.mp4 (the `make demo` video, committed, 231 KB) was made:
# five titled "slides" (hard cuts for scene detection) over espeak-ng speech of the .txt beside it.
set -euo pipefail
out=${1:-samples/quarterly-planning.mp4}
text=$(dirname "$out")/quarterly-planning.txt
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

espeak-ng -v en-us -s 150 -f "$text" -w "$tmp/speech.wav"
slide() { # index colour title subtitle seconds
    ffmpeg -y -v error -f lavfi -i "color=c=$2:size=640x360:rate=25:d=$5" \
        -vf "drawtext=text='$3':fontsize=44:fontcolor=white:x=(w-text_w)/2:y=(h-text_h)/2-20,drawtext=text='$4':fontsize=22:fontcolor=white@0.8:x=(w-text_w)/2:y=(h/2)+40" \
        -c:v libx264 -preset veryslow -crf 30 -pix_fmt yuv420p -g 250 "$tmp/part_$1.mp4"
    echo "file 'part_$1.mp4'" >> "$tmp/list.txt"
}
slide 0 '#1f3b57' 'Quarterly planning' 'Video Insight Bot demo' 3.5
slide 1 '#2e5e3a' 'Budget' 'Cloud spend down 10 percent' 6
slide 2 '#5a2e57' 'Product roadmap' 'Mobile app in March, web editor in June' 7.5
slide 3 '#57432e' 'Hiring' 'Two more engineers for the video team' 4.5
slide 4 '#333333' 'Questions?' 'Send them before Friday' 5
ffmpeg -y -v error -f concat -safe 0 -i "$tmp/list.txt" -i "$tmp/speech.wav" \
    -filter_complex "[1:a]apad,atrim=0:26.5[a]" -map 0:v -map "[a]" \
    -c:v libx264 -preset veryslow -crf 30 -pix_fmt yuv420p -c:a aac -b:a 48k -ac 1 \
    -movflags +faststart -t 26.5 "$out"
