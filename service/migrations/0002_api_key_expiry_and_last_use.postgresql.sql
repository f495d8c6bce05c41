ALTER TABLE "api_key" ADD COLUMN "expires_at" BIGINT;
ALTER TABLE "api_key" ADD COLUMN "last_used_at" BIGINT;
