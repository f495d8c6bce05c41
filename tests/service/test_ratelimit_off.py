"""With POSTS_RATE_LIMIT unset, nothing is rate limited."""

from tests.support import call

# isort: split
from posts.v1 import posts_pb2 as pb

BACKENDS = ["sqlite"]


def test_without_the_setting_many_quick_calls_all_pass(stub, tenant):
    request = pb.ListPostsRequest(workspace_id=tenant.workspace_id)
    for _ in range(50):
        call(stub.ListPosts, request, tenant.key)
