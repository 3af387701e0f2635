# Shared by setup.sh and setup-python.sh (sourced).
# as_root CMD...: runs CMD as root (through sudo when not root).
as_root() {
  if [ "$(id -u)" -ne 0 ]; then sudo "$@"; else "$@"; fi
}

# apt_install_missing WHO PACKAGE...: installs the Debian packages that are not installed yet (nothing, and no
# apt call, when all are present); WHO names the caller in the message.
apt_install_missing() {
  local who=$1 p
  shift
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "$who: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}
