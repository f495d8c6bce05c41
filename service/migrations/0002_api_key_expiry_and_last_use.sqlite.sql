ALTER TABLE "api_key" ADD COLUMN "expires_at" INTEGER;
ALTER TABLE "api_key" ADD COLUMN "last_used_at" INTEGER;
