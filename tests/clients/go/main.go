// The core flow through the generated Go client: a draft, published, read back
// once live; two refused calls and their error details; the post's events.
// Reads POSTS_ADDRESS, POSTS_API_KEY and POSTS_ACCOUNT_ID; prints what
// tests/clients/test_clients.py checks.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	postsv1 "github.com/example/posts/gen/go/posts/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

// refusal is a failed call's code, ErrorInfo reason and BadRequest fields.
func refusal(err error) string {
	if err == nil {
		fail("the call was not refused")
	}
	st := status.Convert(err)
	reason, fields := "", []string{}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			reason = d.Reason
		case *errdetails.BadRequest:
			for _, violation := range d.FieldViolations {
				fields = append(fields, violation.Field)
			}
		}
	}
	return strings.TrimSpace(fmt.Sprintf("%d %s %s", st.Code(), reason, strings.Join(fields, ",")))
}

func main() {
	conn, err := grpc.Dial(os.Getenv("POSTS_ADDRESS"), grpc.WithInsecure())
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	client := postsv1.NewPostServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+os.Getenv("POSTS_API_KEY"))

	created, err := client.CreatePost(ctx, &postsv1.CreatePostRequest{
		AccountId: os.Getenv("POSTS_ACCOUNT_ID"),
		PostType:  postsv1.PostType_POST_TYPE_TWEET,
		Text:      "Hello from the Go client",
		Status:    postsv1.StatusChange_STATUS_CHANGE_DRAFT,
	})
	if err != nil {
		fail("CreatePost: %v", err)
	}
	postID := created.Post.PostId
	fmt.Printf("created: %s %d\n", postID, created.Post.Status)

	published, err := client.UpdatePost(ctx, &postsv1.UpdatePostRequest{
		PostId: postID, Status: postsv1.StatusChange_STATUS_CHANGE_PUBLISH,
	})
	if err != nil {
		fail("UpdatePost: %v", err)
	}
	fmt.Printf("published: %d\n", published.Post.Status)

	for {
		got, err := client.GetPostStatus(ctx, &postsv1.GetPostStatusRequest{PostId: postID})
		if err != nil {
			fail("GetPostStatus: %v", err)
		}
		if got.Post.Status == postsv1.PostStatus_POST_STATUS_PUBLISHED {
			fmt.Printf("live: %s\n", got.Post.PlatformPostId)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	text := "too late"
	_, err = client.UpdatePost(ctx, &postsv1.UpdatePostRequest{PostId: postID, Text: &text})
	fmt.Printf("refused edit: %s\n", refusal(err))
	_, err = client.CreatePost(ctx, &postsv1.CreatePostRequest{
		PostType: postsv1.PostType_POST_TYPE_TWEET,
		Text:     "no account",
		Status:   postsv1.StatusChange_STATUS_CHANGE_DRAFT,
	})
	fmt.Printf("refused create: %s\n", refusal(err))

	first := int64(0)
	watchCtx, stop := context.WithCancel(ctx)
	defer stop()
	stream, err := client.WatchPostEvents(watchCtx, &postsv1.WatchPostEventsRequest{
		PostIds: []string{postID}, AfterEventId: &first,
	})
	if err != nil {
		fail("WatchPostEvents: %v", err)
	}
	types := []string{}
	for {
		answer, err := stream.Recv()
		if err != nil {
			fail("WatchPostEvents ended: %v", err)
		}
		types = append(types, fmt.Sprint(int32(answer.Event.Type)))
		if answer.Event.Type == postsv1.PostEventType_POST_EVENT_TYPE_PUBLISHED {
			break
		}
	}
	fmt.Printf("watched: %s\n", strings.Join(types, ","))
}
