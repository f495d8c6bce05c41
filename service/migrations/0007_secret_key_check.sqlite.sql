CREATE TABLE "secret_key_check" ("digest" VARCHAR(64) NOT NULL PRIMARY KEY, "created_at" INTEGER NOT NULL);
