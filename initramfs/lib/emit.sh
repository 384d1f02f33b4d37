# --- messages to the host on the ktstr.results port (fd 3) ---------------------------
uptime_s() { read -r _up _idle < /proc/uptime; printf '%s' "$_up"; }
# now: sets NOW to the uptime without a subshell (each fork is slow under TCG)
now() { read -r NOW _idle < /proc/uptime; }
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
  now
  emit "{\"t\":\"event\",\"name\":\"$_name\",\"uptime_s\":$NOW,\"fields\":{$_fields}}"
}
find_port() {
  for _d in /sys/class/virtio-ports/*; do
    [ -f "$_d/name" ] || continue
    read -r _pname < "$_d/name"
    if [ "$_pname" = "$1" ]; then
      printf '/dev/%s' "${_d##*/}"
      return 0
    fi
  done
  return 1
}
