#!/bin/sh
# Run by the nginx image's entrypoint before nginx starts (docker-compose*.yml mount it
# into /docker-entrypoint.d/): one nginx worker per CPU this container may use, that is
# its CPU limit rounded up (production gives nginx 0.5 CPU: one worker), else every CPU
# it sees. The image's NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE computes the same but
# rewrites /etc/nginx/nginx.conf, which is a read-only mount here, so this writes the
# directive to the file nginx.conf includes, in the writable conf.d.
set -o errexit
set -o nounset

cpus=$(nproc)  # the CPUs this container may run on (its cpuset)
quota=max
if [ -r /sys/fs/cgroup/cpu.max ]; then  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
  read -r quota period </sys/fs/cgroup/cpu.max
elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then  # cgroup v1: -1 when unlimited
  quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
  period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
fi
if [ "$quota" != max ] && [ "$quota" -gt 0 ]; then
  limit=$(((quota + period - 1) / period))
  if [ "$limit" -lt "$cpus" ]; then cpus=$limit; fi
fi
echo "worker_processes $cpus;" >/etc/nginx/conf.d/worker_processes.main
echo "$0: worker_processes $cpus"
