# --- messages to the host on the ktstr.results port (fd 3) ---------------------------
uptime_s() { read -r _up _idle < /proc/uptime; printf '%s' "$_up"; }
b64() { base64 -w 0 "$@"; }
emit() { printf '%s\n' "$1" >&3; }
emit_log() { emit "{\"t\":\"log\",\"msg\":\"$(printf '%s' "$1" | tr -d '"\\')\"}"; }
# emit_blob NAME FILE
emit_blob() {
  emit "{\"t\":\"blob\",\"name\":\"$1\",\"text_b64\":\"$(b64 "$2" 2>/dev/null)\"}"
}
# emit_event NAME [KEY VALUE]...  (values must not contain quotes or backslashes)
emit_event() {
  _name=$1; shift
  _fields=""
  while [ $# -ge 2 ]; do
    _v=$(printf '%s' "$2" | tr -d '"\\' | tr '\n' ' ')
    _fields="$_fields${_fields:+,}\"$1\":\"$_v\""
    shift 2
  done
  emit "{\"t\":\"event\",\"name\":\"$_name\",\"uptime_s\":$(uptime_s),\"fields\":{$_fields}}"
}
find_port() {
  for _d in /sys/class/virtio-ports/*; do
    [ -f "$_d/name" ] || continue
    if [ "$(cat "$_d/name")" = "$1" ]; then
      printf '/dev/%s' "${_d##*/}"
      return 0
    fi
  done
  return 1
}
