# Run once by the mysql image's entrypoint, when it first makes the database (monitoring
# override only): the exporter's own user, allowed to read server status and no data.
# PROCESS and REPLICATION CLIENT: the status, InnoDB and replica collectors;
# performance_schema: the query and wait collectors. Three connections at most.
docker_process_sql <<EOSQL
CREATE USER IF NOT EXISTS '${MYSQLD_EXPORTER_USER}'@'%'
  IDENTIFIED BY '${MYSQLD_EXPORTER_PASSWORD}' WITH MAX_USER_CONNECTIONS 3;
GRANT PROCESS, REPLICATION CLIENT ON *.* TO '${MYSQLD_EXPORTER_USER}'@'%';
GRANT SELECT ON performance_schema.* TO '${MYSQLD_EXPORTER_USER}'@'%';
EOSQL
