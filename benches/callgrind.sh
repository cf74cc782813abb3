# Sourced by the instruction-counting scripts: valgrind from Debian when it
# is missing (as root), and `instructions CMD...`, the instructions callgrind
# counts running CMD (its output discarded).
if ! command -v valgrind >/dev/null; then
  apt-get install -y -qq valgrind >/dev/null
fi
instructions() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
