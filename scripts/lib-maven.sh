# Shared by setup-java.sh and test-java.sh.
# Maven offline first (no network needed once ~/.m2 holds everything), online when something is missing.
mvn_in() {
  local dir=$1 log
  shift
  log=$(mktemp)
  if (cd "$dir" && mvn -B -q -o -Dstyle.color=never "$@") >"$log" 2>&1; then
    rm -f "$log"
    return 0
  fi
  if grep -qiE "offline|Could not resolve|could not be resolved|Cannot access" "$log"; then
    rm -f "$log"
    (cd "$dir" && mvn -B -q -Dstyle.color=never "$@")
  else
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
}
