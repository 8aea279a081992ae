# Checks of a command's exit code and message, sourced by the tests/cli/*.sh scripts.
#
# expect CODE SUBSTRING ARGS...: `$bin ARGS...` (the densekv binary, 60 s limit) exits with CODE
#   and prints SUBSTRING (stdout or stderr); otherwise prints what it did and sets fail=1, so a
#   script checks every case and ends with `exit $fail`.
# expect_error PATTERN CMD...: CMD exits with 2 (the CLI's code for a named bad input) and its
#   stderr matches the grep PATTERN; otherwise prints what it did and exits 1 at once.

expect() {
  local code=$1 want=$2
  shift 2
  local out rc
  out=$(timeout 60 "$bin" "$@" 2>&1) && rc=0 || rc=$?
  if [[ $rc -ne $code || "$out" != *"$want"* ]]; then
    echo "FAIL: densekv $* -> exit $rc (want $code), output:"
    echo "$out" | tail -20
    echo "  (wanted: $want)"
    fail=1
  fi
}

expect_error() {
  local pattern=$1
  shift
  local err rc
  err=$("$@" 2>&1 > /dev/null) && rc=0 || rc=$?
  if [ $rc -ne 2 ] || ! grep -q -- "$pattern" <<< "$err"; then
    echo "expected exit 2 and '$pattern' from: $*"
    echo "rc=$rc"
    echo "$err"
    exit 1
  fi
}
