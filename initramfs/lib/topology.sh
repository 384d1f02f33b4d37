# --- what the guest sees: one line per CPU and per NUMA node --------------------------
report_topology() {
  _out=/tmp/ktstr-topology.txt
  : > "$_out"
  printf 'online %s\n' "$(cat /sys/devices/system/cpu/online)" >> "$_out"
  for _c in /sys/devices/system/cpu/cpu[0-9]*; do
    _n=${_c##*/cpu}
    _t=$_c/topology
    [ -d "$_t" ] || continue
    _l3=-
    [ -f "$_c/cache/index3/shared_cpu_list" ] && _l3=$(cat "$_c/cache/index3/shared_cpu_list")
    printf 'cpu %s package=%s die=%s core=%s siblings=%s l3=%s\n' "$_n" \
      "$(cat "$_t/physical_package_id")" "$(cat "$_t/die_id" 2>/dev/null || echo 0)" \
      "$(cat "$_t/core_id")" "$(cat "$_t/thread_siblings_list")" "$_l3" >> "$_out"
  done
  for _d in /sys/devices/system/node/node[0-9]*; do
    [ -d "$_d" ] || continue
    _m=$(sed -n 's/.*MemTotal: *\([0-9]*\) kB/\1/p' "$_d/meminfo")
    printf 'node %s cpulist=%s memkb=%s distance=%s\n' "${_d##*/node}" \
      "$(cat "$_d/cpulist")" "${_m:-0}" "$(cat "$_d/distance" | tr ' ' ',')" >> "$_out"
  done
  emit "{\"t\":\"topology\",\"text_b64\":\"$(b64 "$_out")\"}"
}
