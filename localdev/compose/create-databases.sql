-- Run once by the shopstream-db container on an empty data volume (docker-entrypoint-initdb.d).
CREATE DATABASE shopstream_source;
CREATE DATABASE shopstream_warehouse;
