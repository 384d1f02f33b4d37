# --- what the guest sees: one line per CPU and per NUMA node --------------------------
# Mostly shell builtins (read, printf): every fork+exec costs milliseconds under TCG and
# this runs on every boot. The cpumap lists (thread_siblings_list, node cpulist) are
# binary sysfs attributes that fail busybox read's byte-by-byte reads: those use cat.
rd() { _v=-; [ -r "$1" ] && read -r _v < "$1"; printf '%s' "$_v"; }
report_topology() {
  _out=/tmp/ktstr-topology.txt
  {
    printf 'online %s\n' "$(rd /sys/devices/system/cpu/online)"
    for _c in /sys/devices/system/cpu/cpu[0-9]*; do
      _t=$_c/topology
      [ -d "$_t" ] || continue
      read -r _pkg < "$_t/physical_package_id"
      _die=0; [ -r "$_t/die_id" ] && read -r _die < "$_t/die_id"
      read -r _core < "$_t/core_id"
      _sib=$(cat "$_t/thread_siblings_list")
      _l3=-; [ -r "$_c/cache/index3/shared_cpu_list" ] && read -r _l3 < "$_c/cache/index3/shared_cpu_list"
      printf 'cpu %s package=%s die=%s core=%s siblings=%s l3=%s\n' "${_c##*/cpu}" \
        "$_pkg" "$_die" "$_core" "$_sib" "$_l3"
    done
    for _d in /sys/devices/system/node/node[0-9]*; do
      [ -d "$_d" ] || continue
      _m=0
      while read -r _a _b _k _v _u; do
        [ "$_k" = MemTotal: ] && { _m=$_v; break; }
      done < "$_d/meminfo"
      _cl=$(cat "$_d/cpulist")
      read -r _dist < "$_d/distance"
      set -- $_dist
      _dl=$1; shift
      for _x in "$@"; do _dl="$_dl,$_x"; done
      printf 'node %s cpulist=%s memkb=%s distance=%s\n' "${_d##*/node}" "$_cl" "$_m" "$_dl"
    done
  } > "$_out"
  emit "{\"t\":\"topology\",\"text_b64\":\"$(b64 "$_out")\"}"
}
