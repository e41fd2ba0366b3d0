#!/bin/sh
# nginx in front of the web replicas. nginx looks "web" up only when it loads its configuration, so this
# watches what the name resolves to and reloads nginx when the set of replicas changes (scale, crash, restart).
resolve() { getent ahostsv4 web | awk '{print $1}' | sort -u | tr '\n' ' '; }
until [ -n "$(resolve)" ]; do sleep 0.2; done
nginx -g 'daemon off;' &
nginx=$!
trap 'nginx -s quit; wait $nginx; exit 0' TERM INT
seen=$(resolve)
echo "lb: web is $seen"
while kill -0 "$nginx" 2>/dev/null; do
    sleep 1 & wait $!
    now=$(resolve)
    if [ -n "$now" ] && [ "$now" != "$seen" ]; then
        echo "lb: web is now $now: reloading nginx"
        nginx -s reload
        seen=$now
    fi
done
