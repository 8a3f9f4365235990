// Command s3setup prepares the backup tests' object store as a platform team's provisioning
// would: it creates a bucket (an existing one of the same owner is fine) and replaces its
// bucket policy, signed with the store's root credentials by the AWS SDK.
//
// Usage: s3setup -endpoint URL -access KEY -secret KEY -bucket NAME [-policy FILE]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func main() {
	endpoint := flag.String("endpoint", "", "the store's URL")
	access := flag.String("access", "", "root access key id")
	secret := flag.String("secret", "", "root secret access key")
	bucket := flag.String("bucket", "", "the bucket")
	policy := flag.String("policy", "", "a bucket policy file to put")
	flag.Parse()
	if err := run(*endpoint, *access, *secret, *bucket, *policy); err != nil {
		fmt.Fprintln(os.Stderr, "s3setup:", err)
		os.Exit(1)
	}
}

func run(endpoint, access, secret, bucket, policy string) error {
	ctx := context.Background()
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       "us-east-1",
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
	})
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	if policy == "" {
		return nil
	}
	document, err := os.ReadFile(policy)
	if err != nil {
		return err
	}
	_, err = client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{
		Bucket: aws.String(bucket),
		Policy: aws.String(string(document)),
	})
	if err != nil {
		return fmt.Errorf("put bucket policy: %w", err)
	}
	return nil
}
