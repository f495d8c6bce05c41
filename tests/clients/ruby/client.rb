# The core flow through the generated Ruby client: a draft, published, read back
# once live; two refused calls and their error details; the post's events.
# Reads POSTS_ADDRESS, POSTS_API_KEY and POSTS_ACCOUNT_ID; prints what
# tests/clients/test_clients.py checks. Run with generated/ruby on the load path.
require 'grpc'
require 'grpc/google_rpc_status_utils'
require 'google/protobuf/well_known_types'
require 'google/rpc/error_details_pb'
require 'posts/v1/posts_services_pb'

# A refused call's code, ErrorInfo reason and BadRequest fields.
def refusal
  yield
  abort 'the call was not refused'
rescue GRPC::BadStatus => e
  status = GRPC::GoogleRpcStatusUtils.extract_google_rpc_status(e.to_status)
  reason = ''
  fields = []
  status.details.each do |detail|
    if (info = detail.unpack(Google::Rpc::ErrorInfo))
      reason = info.reason
    elsif (bad = detail.unpack(Google::Rpc::BadRequest))
      fields += bad.field_violations.map(&:field)
    end
  end
  [e.code, reason, fields.join(',')].join(' ').strip
end

stub = Posts::V1::PostService::Stub.new(ENV.fetch('POSTS_ADDRESS'), :this_channel_is_insecure,
                                        timeout: 60)
auth = { metadata: { 'authorization' => "Bearer #{ENV.fetch('POSTS_API_KEY')}" } }

created = stub.create_post(Posts::V1::CreatePostRequest.new(
  account_id: ENV.fetch('POSTS_ACCOUNT_ID'), post_type: :POST_TYPE_TWEET,
  text: 'Hello from the Ruby client', status: :STATUS_CHANGE_DRAFT
), **auth).post
post_id = created.post_id
puts "created: #{post_id} #{Posts::V1::PostStatus.resolve(created.status)}"

published = stub.update_post(Posts::V1::UpdatePostRequest.new(
  post_id: post_id, status: :STATUS_CHANGE_PUBLISH
), **auth).post
puts "published: #{Posts::V1::PostStatus.resolve(published.status)}"

loop do
  post = stub.get_post_status(Posts::V1::GetPostStatusRequest.new(post_id: post_id), **auth).post
  if post.status == :POST_STATUS_PUBLISHED
    puts "live: #{post.platform_post_id}"
    break
  end
  sleep 0.1
end

edit = refusal do
  stub.update_post(Posts::V1::UpdatePostRequest.new(post_id: post_id, text: 'too late'), **auth)
end
puts "refused edit: #{edit}"
create = refusal do
  stub.create_post(Posts::V1::CreatePostRequest.new(
    post_type: :POST_TYPE_TWEET, text: 'no account', status: :STATUS_CHANGE_DRAFT
  ), **auth)
end
puts "refused create: #{create}"

call = stub.watch_post_events(Posts::V1::WatchPostEventsRequest.new(
  post_ids: [post_id], after_event_id: 0
), **auth, return_op: true)
types = []
call.execute.each do |answer|
  types << Posts::V1::PostEventType.resolve(answer.event.type)
  break if answer.event.type == :POST_EVENT_TYPE_PUBLISHED
end
call.cancel
puts "watched: #{types.join(',')}"
