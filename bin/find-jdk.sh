# Sourced by ./build, ./syncline and .ci/run. Finds a JDK 21 or newer and exports JAVA_HOME.
# Order: $JAVA_HOME, then `java` on PATH, then /usr/lib/jvm/* (newest first).
syncline_java_major() {
  "$1/bin/java" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1
}
syncline_find_jdk() {
  local candidates=() c major
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  if command -v java >/dev/null 2>&1; then
    c=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
    candidates+=("$c")
  fi
  for c in $(ls -d /usr/lib/jvm/* 2>/dev/null | sort -rV); do candidates+=("$c"); done
  for c in "${candidates[@]}"; do
    [ -x "$c/bin/java" ] && [ -x "$c/bin/javac" ] || continue
    major=$(syncline_java_major "$c")
    if [ -n "$major" ] && [ "$major" -ge 21 ]; then
      export JAVA_HOME="$c"
      export PATH="$JAVA_HOME/bin:$PATH"
      return 0
    fi
  done
  echo "syncline: no JDK 21 or newer found (looked at JAVA_HOME, java on PATH, /usr/lib/jvm/*)." >&2
  echo "syncline: install a JDK 21+ and set JAVA_HOME to it." >&2
  return 1
}
syncline_find_jdk
